// Command mkbucket creates an S3 bucket with Object Lock enabled, for
// scripts/minio.sh: the test server needs no mc client.
//
//	mkbucket -endpoint 127.0.0.1:9000 -bucket custody-test
//
// The access and secret keys come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. An existing bucket is left as it is.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint, host:port")
	bucket := flag.String("bucket", "", "bucket to create")
	secure := flag.Bool("tls", false, "use HTTPS")
	flag.Parse()
	if err := run(*endpoint, *bucket, *secure); err != nil {
		fmt.Fprintln(os.Stderr, "mkbucket:", err)
		os.Exit(1)
	}
}

func run(endpoint, bucket string, secure bool) error {
	if endpoint == "" || bucket == "" {
		return fmt.Errorf("-endpoint and -bucket are required")
	}
	c, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		Secure: secure,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exists, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	return c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true})
}
