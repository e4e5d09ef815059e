package engine

import (
	"flag"
	"io"
	"net/netip"
	"reflect"
	"testing"
)

// TestRegisterFlagsDefaults: with no flag given, the flags leave Options
// as EnsureDefaults makes them (but Loops, which stays 0 to mean the CPU
// count): the flags' defaults and EnsureDefaults' are one.
func TestRegisterFlagsDefaults(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	flagged := o
	o.EnsureDefaults()
	o.Loops = 0
	o.BacklogBytes, o.StreamHeartbeatInterval, o.StreamHeartbeat, o.WSBeacon, o.SweepInterval = 0, 0, nil, nil, 0
	if !reflect.DeepEqual(flagged, o) {
		t.Errorf("flag defaults\n%+v\ndiffer from EnsureDefaults'\n%+v", flagged, o)
	}
}

// TestRegisterFlagsLists: a list flag's first value replaces the
// default, values add up across repeats and commas, and a trusted proxy
// given as an address means that one host.
func TestRegisterFlagsLists(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	err := fs.Parse([]string{"--listen", "127.0.0.1:1,127.0.0.1:2", "--listen", "[::1]:3",
		"--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "192.168.0.1, ::1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:1", "127.0.0.1:2", "[::1]:3"}; !reflect.DeepEqual(o.Listen, want) {
		t.Errorf("Listen = %v, want %v", o.Listen, want)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.1/32"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(o.TrustedProxies, want) {
		t.Errorf("TrustedProxies = %v, want %v", o.TrustedProxies, want)
	}
	if err := fs.Set("trusted-proxy", "10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// FuzzTrustedProxyFlag: any --trusted-proxy value is refused or adds
// valid prefixes whose printed list reads back as the same prefixes.
func FuzzTrustedProxyFlag(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		var p prefixList
		if err := p.Set(v); err != nil {
			return
		}
		var back prefixList
		for _, x := range p {
			if !x.IsValid() {
				t.Fatalf("%q gave invalid prefix %v", v, x)
			}
		}
		if err := back.Set(p.String()); err != nil || !reflect.DeepEqual(back, p) {
			t.Fatalf("%q: printed %q reads back as %v (%v), want %v", v, p.String(), back, err, p)
		}
	})
}
