package promcheck

import (
	"strings"
	"testing"
)

// Each rule of Parse refuses the text that breaks it.
func TestParseRefuses(t *testing.T) {
	const good = "# HELP halley_a_total A.\n# TYPE halley_a_total counter\nhalley_a_total 1\n"
	if _, err := Parse([]byte(good + "# HELP go_x X.\n# TYPE go_x gauge\ngo_x 2\n")); err != nil {
		t.Fatalf("good text refused: %v", err)
	}
	for _, tc := range []struct{ what, text, want string }{
		{"duplicate family", good + good, "second HELP"},
		{"duplicate family apart", good + "# HELP halley_b B.\n# TYPE halley_b gauge\nhalley_b 1\n" + good, "second"},
		{"no HELP", "# TYPE halley_a gauge\nhalley_a 1\n", "HELP"},
		{"no TYPE", "# HELP halley_a A.\nhalley_a 1\n", "TYPE"},
		{"empty HELP", "# HELP halley_a \n# TYPE halley_a gauge\nhalley_a 1\n", "HELP"},
		{"counter without _total", "# HELP halley_a A.\n# TYPE halley_a counter\nhalley_a 1\n", "_total"},
		{"gauge with _total", "# HELP halley_a_total A.\n# TYPE halley_a_total gauge\nhalley_a_total 1\n", "_total"},
		{"not ours", "# HELP other_a A.\n# TYPE other_a gauge\nother_a 1\n", "halley_"},
		{"camel case", "# HELP halley_fooBar A.\n# TYPE halley_fooBar gauge\nhalley_fooBar 1\n", "snake"},
		{"malformed", "halley_a one\n", "expfmt"},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.what, err, tc.want)
		}
	}
}
