package ragpipe

import "time"

// Citation is a passage an answer cites by its marker [N].
type Citation struct {
	N          int     `json:"n"`
	DocumentID string  `json:"document_id"`
	ChunkIndex int     `json:"chunk_index"`
	PageStart  int     `json:"page_start"`
	PageEnd    int     `json:"page_end"`
	Section    string  `json:"section"`
	Text       string  `json:"text"`
	Score      float64 `json:"score"`
}

// Turn is one question of a conversation and its answer. N counts from 1.
type Turn struct {
	N                int
	Question         string
	Answer           string
	Citations        []Citation
	Provider, Model  string
	PromptTokens     int
	CompletionTokens int
	CreatedAt        time.Time
}

// Conversation is a tenant's exchange with /v1/ask. Title is its first
// question, shortened; Turns is filled only when one conversation is read.
type Conversation struct {
	ID        string
	TenantID  string
	Title     string
	TurnCount int
	Turns     []Turn
	CreatedAt time.Time
	UpdatedAt time.Time
}

// UsageTotal is what a tenant's answers cost with one provider and model.
type UsageTotal struct {
	Provider, Model  string
	Requests         int
	PromptTokens     int64
	CompletionTokens int64
}
