// Command mkbucket makes sure the configured S3 bucket exists. It is used by
// scripts/services.sh against the local S3-compatible server and reads the
// same RAGPIPE_* settings, with the same defaults, as the ragpipe binaries.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/config"
)

func main() {
	cfg, err := config.Load(os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbucket:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := blob.New(blob.Config{Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, Bucket: cfg.S3Bucket,
		AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey})
	if err := s.EnsureBucket(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "mkbucket: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("ready")
}
