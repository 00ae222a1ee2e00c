package ragpipe

// DocumentFilter narrows a document listing.
type DocumentFilter struct {
	Collection string
	Status     string
}

// CreateOptions adjust the recording of a new document.
type CreateOptions struct {
	// Dedupe returns an existing document of the same tenant and collection
	// with the same bytes (SHA-256) instead of creating one.
	Dedupe bool
	// Callback, when set, is recorded with the document, so no event of it
	// can miss its callback URL.
	Callback *Callback
	// Idempotency, when set, stores the answer to the request under its key
	// in the same transaction.
	Idempotency *IdempotencyRecord
}

// Callback is the URL that receives a document's webhook events, besides
// the tenant's subscriptions. Its deliveries are signed with the tenant's
// callback secret; NewSecret becomes that secret if the tenant has none.
type Callback struct {
	URL       string
	NewSecret string
}

// IdempotencyRecord is the answer to a request made with an Idempotency-Key.
type IdempotencyRecord struct {
	Key         string
	Fingerprint string // what the request asked; a retry must ask the same
	Status      int
	// Body renders the answer once the document and job are recorded; it is
	// not set on records read back (see RawBody).
	Body    func(d *Document, j *Job) ([]byte, error)
	RawBody []byte
}

// ErrIdempotencyConflict reports that another request with the same
// Idempotency-Key committed first; its record can be read back.
var ErrIdempotencyConflict = Errorf(ECONFLICT, "a request with this Idempotency-Key is already recorded")
