// Package eval measures search quality on BEIR SciFact: it ingests the
// corpus through the real API and workers into the real services, runs the
// test queries through the real search and prints nDCG@10, Recall@100 and
// latency per mode (docs/search.md), then asks every test query of
// /v1/ask (the extractive answerer, streamed) and prints the time to its
// first token and to the whole answer (docs/ask.md). It lives in the package's tests and
// runs only when RAGPIPE_EVAL=1 (`make eval`); the dataset is read from
// RAGPIPE_EVAL_DATA (default ../shared/datasets/scifact beside the checkout).
package eval
