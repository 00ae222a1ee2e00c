// Package chaos is ragpipe's chaos suite: it runs the real api and worker
// binaries against a Postgres, a Redis and an S3 server of its own, feeds them
// documents through the HTTP API, and meanwhile SIGKILLs workers, restarts
// Redis (losing its data) and Postgres, makes S3 refuse connections and makes
// the embedding provider fail, answer 429 or hang. It then checks that every
// accepted document reached exactly one end state with the chunks and
// vectors of an undisturbed run.
//
// The suite lives in the package's tests and runs only when RAGPIPE_CHAOS=1
// (`make chaos`); docs/chaos.md describes the knobs and the figures.
package chaos
