// Command mkbucket makes sure an S3 bucket exists on the configured endpoint.
// It is used by scripts/services.sh against the local S3-compatible server.
//
// Configuration (same defaults as the ragpipe binaries):
//
//	RAGPIPE_S3_ENDPOINT   default http://127.0.0.1:7070
//	RAGPIPE_S3_BUCKET     default ragpipe
//	RAGPIPE_S3_ACCESS_KEY default ragpipe-local
//	RAGPIPE_S3_SECRET_KEY default ragpipe-local-secret
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	endpoint := getenv("RAGPIPE_S3_ENDPOINT", "http://127.0.0.1:7070")
	bucket := getenv("RAGPIPE_S3_BUCKET", "ragpipe")
	access := getenv("RAGPIPE_S3_ACCESS_KEY", "ragpipe-local")
	secret := getenv("RAGPIPE_S3_SECRET_KEY", "ragpipe-local-secret")

	created, err := ensureBucket(endpoint, bucket, access, secret)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkbucket: bucket %q at %s: %v\n", bucket, endpoint, err)
		os.Exit(1)
	}
	if created {
		fmt.Println("created")
	} else {
		fmt.Println("exists")
	}
}

func ensureBucket(endpoint, bucket, access, secret string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
	})

	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return false, nil
	}
	if !isNotFound(err) {
		return false, fmt.Errorf("head bucket: %w", err)
	}

	_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return false, nil
		}
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "BucketAlreadyOwnedByYou" {
			return false, nil
		}
		return false, fmt.Errorf("create bucket: %w", err)
	}
	return true, nil
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var nsb *types.NoSuchBucket
	if errors.As(err, &nsb) {
		return true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return true
	}
	return false
}
