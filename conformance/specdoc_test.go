package conformance

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEveryRuleHasItsSection: the specification in the repository
// (docs/spec.md) has a "### ID" heading for every rule a case of this
// suite checks, and for the cluster rules no case checks yet; a case
// naming a rule the document lacks fails here, not in a reader's hands.
func TestEveryRuleHasItsSection(t *testing.T) {
	doc, err := os.ReadFile("../docs/spec.md")
	if err != nil {
		t.Fatalf("the specification: %v", err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### ([A-Z]+(?:-[A-Z])?-[0-9]{2})\b`).FindAllStringSubmatch(string(doc), -1) {
		headings[m[1]] = true
	}
	want := map[string]bool{"S-02": true, "S-03": true}
	for _, c := range allCases() {
		for _, id := range regexp.MustCompile(`[A-Z]+(?:-[A-Z])?-[0-9]{2}`).FindAllString(c.rule, -1) {
			want[id] = true
		}
	}
	if len(want) < 40 {
		t.Fatalf("only %d rule ids found in the cases: the pattern no longer matches them", len(want))
	}
	var missing []string
	for id := range want {
		if !headings[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("docs/spec.md has no \"### ID\" heading for %s", strings.Join(missing, ", "))
	}
}
