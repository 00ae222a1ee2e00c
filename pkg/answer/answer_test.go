package answer

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestCite(t *testing.T) {
	text, cited := Cite("B is so [3]. A too [1][3]. Not this [9] or [0].", 3)
	if text != "B is so [1]. A too [2][1]. Not this  or ." || !slices.Equal(cited, []int{3, 1}) {
		t.Errorf("Cite = %q, %v", text, cited)
	}
	if text, cited := Cite("No markers.", 2); text != "No markers." || cited != nil {
		t.Errorf("Cite without markers = %q, %v", text, cited)
	}
}

func TestExtractive(t *testing.T) {
	q := Question{Text: "Which licences allow redistribution of modified works?", Passages: []Passage{
		{N: 1, Text: "The weather was fine. Nothing here."},
		{N: 2, Text: "Modified works may be redistributed under the licence. Unmodified copies need no notice."},
		{N: 3, Text: "Licences differ. Some licences allow redistribution only of unmodified works."},
	}}
	var deltas []string
	u, err := Extractive{}.Answer(context.Background(), q, func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "Some licences allow redistribution only of unmodified works. [3] " +
		"Modified works may be redistributed under the licence. [2]"
	if got := strings.Join(deltas, ""); got != want {
		t.Errorf("answer = %q\nwant     %q", got, want)
	}
	if u.CompletionTokens == 0 || u.PromptTokens == 0 {
		t.Errorf("usage %+v", u)
	}

	deltas = nil
	if _, err := (Extractive{}).Answer(context.Background(), Question{Text: "zebra marmalade", Passages: q.Passages},
		func(d string) error { deltas = append(deltas, d); return nil }); err != nil || strings.Join(deltas, "") != NothingFound {
		t.Errorf("unrelated question: %q, %v", deltas, err)
	}
}

func TestTerms(t *testing.T) {
	if got := Terms("What are the licences for distributing modified Works?"); !slices.Equal(got, []string{"licenc", "distribut", "modifi", "work"}) {
		t.Errorf("Terms = %q", got)
	}
}
