// Package boundaries holds the rules of the package layout (docs/architecture.md)
// against what the code imports.
package boundaries

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ragpipe/ragpipe/"

// adapters wrap one outside thing each; they import pkg/ragpipe and the
// standard library (and third-party libraries), never each other.
var adapters = []string{"pkg/postgres", "pkg/blob", "pkg/queue", "pkg/webhook", "pkg/extract", "pkg/chunk", "pkg/embed", "pkg/rerank"}

// imports returns every package of the module (not its tests) with what it
// imports directly.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	return m
}

func TestBoundaries(t *testing.T) {
	t.Parallel()
	pkgs := imports(t)
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for pkg, deps := range pkgs {
		for _, d := range deps {
			ours, isOurs := strings.CutPrefix(d, module)
			switch {
			case d == "github.com/hibiken/asynq" && pkg != "pkg/queue" && pkg != "pkg/platform":
				t.Errorf("%s imports Asynq; only pkg/queue and pkg/platform may", pkg)
			case !isOurs:
			case pkg == "pkg/ragpipe":
				t.Errorf("pkg/ragpipe imports %s; the contract imports nothing of ours", ours)
			case slices.Contains(adapters, pkg) && ours != "pkg/ragpipe" && ours != "migrations":
				t.Errorf("adapter %s imports %s; adapters speak to each other only through pkg/ragpipe", pkg, ours)
			case pkg == "pkg/httpapi" && slices.Contains(adapters, ours):
				t.Errorf("pkg/httpapi imports the adapter %s", ours)
			}
		}
	}
}
