// Package eval measures search quality on BEIR SciFact: it ingests the
// corpus through the real API and workers into the real services, runs the
// test queries through the real search and prints nDCG@10, Recall@100 and
// latency per mode (docs/search.md). It lives in the package's tests and
// runs only when RAGPIPE_EVAL=1 (`make eval`); the dataset is read from
// RAGPIPE_EVAL_DATA (default ../shared/datasets/scifact beside the checkout).
package eval
