// Command ragctl is ragpipe's operator tool:
//
//	ragctl migrate                          apply database migrations
//	ragctl admin create-key --tenant NAME   create a tenant (if new) and an API key
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/postgres"
)

const usage = `usage:
  ragctl migrate                          apply database migrations
  ragctl admin create-key --tenant NAME   create the tenant if needed and print a new API key
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ragctl:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("see usage above")

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	switch {
	case args[0] == "migrate":
		if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case len(args) >= 2 && args[0] == "admin" && args[1] == "create-key":
		return createKey(ctx, cfg, args[2:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return errUsage
}

func createKey(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("create-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant name (created if it does not exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("create-key: --tenant is required")
	}
	if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	key, hash := apikey.New()
	tenantID, err := db.CreateKey(ctx, *tenant, apikey.Display(key), hash)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	fmt.Fprintf(stdout, "tenant %s (%s)\nAPI key (shown once; store it now):\n%s\n", *tenant, tenantID, key)
	return nil
}
