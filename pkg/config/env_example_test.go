package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// TestEnvExampleIsDefaults keeps .env.example and docs/configuration.md in
// step with the Config struct.
func TestEnvExampleIsDefaults(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "RAGPIPE_") {
			env = append(env, line)
		}
	}
	got, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := config.Load(nil)
	if !reflect.DeepEqual(got, want) {
		t.Errorf(".env.example differs from the defaults:\n%+v\n%+v", got, want)
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.TypeFor[config.Config]()
	for i := range v.NumField() {
		name := config.Prefix + v.Field(i).Tag.Get("env")
		if !strings.Contains(string(b), name+"=") {
			t.Errorf(".env.example lacks %s", name)
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/configuration.md lacks %s", name)
		}
	}
}
