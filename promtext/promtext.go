package promtext

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Metric types, as written on a TYPE line.
const (
	TypeCounter   = "counter"
	TypeGauge     = "gauge"
	TypeHistogram = "histogram"
)

// Counter appends a counter family of one sample. Prometheus expects its
// name to end in _total.
func Counter(dst []byte, name, help string, v float64) []byte {
	dst = Header(dst, name, TypeCounter, help)
	return Sample(dst, name, "", "", v)
}

// Gauge appends a gauge family of one sample.
func Gauge(dst []byte, name, help string, v float64) []byte {
	dst = Header(dst, name, TypeGauge, help)
	return Sample(dst, name, "", "", v)
}

// Header appends the HELP and TYPE lines of a family whose samples the
// caller appends next, with Sample; every sample of a family must follow
// its header with no other family in between.
func Header(dst []byte, name, typ, help string) []byte {
	dst = append(dst, "# HELP "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = appendEscaped(dst, help, false)
	dst = append(dst, "\n# TYPE "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = append(dst, typ...)
	return append(dst, '\n')
}

// Sample appends one sample line; with label == "" it has no labels,
// else the one pair label="value".
func Sample(dst []byte, name, label, value string, v float64) []byte {
	dst = append(dst, name...)
	if label != "" {
		dst = append(dst, '{')
		dst = append(dst, label...)
		dst = append(dst, `="`...)
		dst = appendEscaped(dst, value, true)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, ' ')
	dst = appendFloat(dst, v)
	return append(dst, '\n')
}

// Histogram appends a histogram family. counts holds one count per bound
// (not cumulative: what fell in that bucket alone) plus a last one for
// the observations above every bound; bounds rise; sum is in the bounds'
// unit (seconds for a latency, as Prometheus wants).
func Histogram(dst []byte, name, help string, bounds []float64, counts []uint64, sum float64) []byte {
	dst = Header(dst, name, TypeHistogram, help)
	var cum uint64
	for i, b := range bounds {
		cum += counts[i]
		dst = appendBucket(dst, name, b, cum)
	}
	cum += counts[len(bounds)]
	dst = append(dst, name...)
	dst = append(dst, `_bucket{le="+Inf"} `...)
	dst = strconv.AppendUint(dst, cum, 10)
	dst = append(dst, '\n')
	dst = append(dst, name...)
	dst = append(dst, "_sum "...)
	dst = appendFloat(dst, sum)
	dst = append(dst, '\n')
	dst = append(dst, name...)
	dst = append(dst, "_count "...)
	dst = strconv.AppendUint(dst, cum, 10)
	return append(dst, '\n')
}

func appendBucket(dst []byte, name string, le float64, cum uint64) []byte {
	dst = append(dst, name...)
	dst = append(dst, `_bucket{le="`...)
	dst = appendFloat(dst, le)
	dst = append(dst, `"} `...)
	dst = strconv.AppendUint(dst, cum, 10)
	return append(dst, '\n')
}

// appendFloat writes v as the text format wants: shortest exact form,
// "+Inf", "-Inf" or "NaN".
func appendFloat(dst []byte, v float64) []byte {
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// appendEscaped writes s with the text format's escapes: a backslash and
// a newline always, a double quote inside a label value. Invalid UTF-8,
// which the parser refuses, becomes U+FFFD (this allocates, and only
// then).
func appendEscaped(dst []byte, s string, quoted bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			dst = append(dst, `\\`...)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '"' && quoted:
			dst = append(dst, `\"`...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
