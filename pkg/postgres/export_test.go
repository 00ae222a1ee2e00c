package postgres

// SearchSQL lets the tests explain the very queries Search runs.
var SearchSQL = searchSQL
