package ragpipe

import "time"

// EmbeddingSpace is one way of turning text into vectors. Vectors of two
// spaces are not comparable, so each chunk's vector belongs to one, each
// tenant searches one, and changing the configured space re-embeds every
// tenant's chunks into the new one (an EmbeddingMigration).
type EmbeddingSpace struct {
	ID            int
	Provider      string // hashing, openai or ollama
	Model         string // for hashing, the version of its feature scheme
	BaseURL       string // of a remote provider
	Dimensions    int
	PassagePrefix string // put before each chunk's text when embedding it
}

// States of an embedding migration.
const (
	MigrationRunning   = "running"
	MigrationSucceeded = "succeeded"
	MigrationFailed    = "failed"
)

// EmbeddingMigration is the re-embedding of one tenant's chunks from one
// space into another. Searches use From until it succeeds, then Target.
type EmbeddingMigration struct {
	From, Target   EmbeddingSpace
	State          string
	TotalChunks    int // chunks of other spaces when it started
	EmbeddedChunks int
	Error          string
	StartedAt      time.Time
	UpdatedAt      time.Time
	FinishedAt     *time.Time
}

// Progress is the share of the chunks embedded so far, 0 to 1.
func (m *EmbeddingMigration) Progress() float64 {
	if m.State == MigrationSucceeded || m.TotalChunks == 0 {
		return 1
	}
	return min(1, float64(m.EmbeddedChunks)/float64(m.TotalChunks))
}

// EmbeddingStatus is what a tenant's searches use and the latest change.
type EmbeddingStatus struct {
	Space     EmbeddingSpace
	Migration *EmbeddingMigration // nil when the tenant's chunks were never re-embedded
}

// ReembedBatch is one batch of a tenant's chunks to embed into Target.
type ReembedBatch struct {
	Target EmbeddingSpace
	Texts  []string
}
