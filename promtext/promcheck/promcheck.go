// Package promcheck holds the checks the tests of every /metrics answer
// share: the text parses with Prometheus's own parser (expfmt), each
// family has exactly one HELP and one TYPE line, names are snake case,
// counters end in _total and nothing else does, and every family that is
// not the Go runtime's or the process's carries the halley_ prefix. Only
// tests import it.
package promcheck

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// foreign are the prefixes of the families client_golang's runtime and
// process collectors write; every other family is Halley's own.
var foreign = []string{"go_", "process_"}

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// Parse parses a whole /metrics answer and checks it as the package doc
// says; it returns the families by name.
func Parse(text []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("expfmt: %w", err)
	}
	helps, types := map[string]int{}, map[string]int{}
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "#" && f[1] == "HELP" {
			helps[f[2]]++
		}
		if len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]]++
		}
	}
	for name, mf := range fams {
		if helps[name] != 1 || types[name] != 1 {
			return nil, fmt.Errorf("%s: %d HELP and %d TYPE lines, want one each", name, helps[name], types[name])
		}
		if strings.TrimSpace(mf.GetHelp()) == "" {
			return nil, fmt.Errorf("%s: empty HELP", name)
		}
		if !snake.MatchString(name) {
			return nil, fmt.Errorf("%s: not snake case", name)
		}
		counter := mf.GetType() == dto.MetricType_COUNTER
		if total := strings.HasSuffix(name, "_total"); counter != total {
			return nil, fmt.Errorf("%s: type %s; counters, and only they, end in _total", name, mf.GetType())
		}
		if !strings.HasPrefix(name, "halley_") && !hasAnyPrefix(name, foreign) {
			return nil, fmt.Errorf("%s: Halley's families start with halley_", name)
		}
	}
	for name := range types {
		if fams[name] == nil {
			return nil, fmt.Errorf("%s: TYPE line without samples", name)
		}
	}
	return fams, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
