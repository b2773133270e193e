package config_test

import (
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

type mode int

const (
	modeSingle mode = iota
	modeArray
	modeStream
)

var modes = config.Enum[mode]{
	{Value: modeSingle, Name: "single"}, {Value: modeArray, Name: "array"},
	{Value: modeArray, Name: "json_array"}, {Value: modeStream, Name: "stream"},
}

func (m mode) String() string                { return modes.Name(m) }
func (m *mode) UnmarshalText(b []byte) error { return modes.Parse(m, b) }

type codec string

var codecs = config.Enum[codec]{{Value: "lz4", Name: "lz4"}, {Value: "none", Name: "none"}}

func (c codec) String() string { return codecs.Name(c) }

func TestEnumName(t *testing.T) {
	for _, tc := range []struct {
		v    interface{ String() string }
		want string
	}{
		{modeSingle, "single"},
		{modeArray, "array"}, // the first name is canonical, the alias is not printed
		{modeStream, "stream"},
		{mode(7), "mode(7)"},
		{mode(-1), "mode(-1)"},
		{codec("lz4"), "lz4"},
		{codec("gzip"), `codec("gzip")`},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// A value of an enum on another underlying type prints as Go would spell it.
func TestEnumNameOtherKinds(t *testing.T) {
	type ratio float64
	type flag bool
	if got := (config.Enum[ratio]{}).Name(0.5); got != "ratio(0.5)" {
		t.Errorf("Name = %q, want ratio(0.5)", got)
	}
	if got := (config.Enum[flag]{{Value: false, Name: "off"}}).Name(true); got != "flag(true)" {
		t.Errorf("Name = %q, want flag(true)", got)
	}
}

func TestEnumParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    mode
		wantErr string
	}{
		{in: "single", want: modeSingle},
		{in: "array", want: modeArray},
		{in: "json_array", want: modeArray},
		{in: "  Stream\n", want: modeStream},
		{in: "ARRAY", want: modeArray},
		{in: "", wantErr: `want "single", "array", "json_array" or "stream"`},
		{in: "zip", wantErr: `want "single", "array", "json_array" or "stream"`},
	} {
		m := mode(9)
		err := m.UnmarshalText([]byte(tc.in))
		switch {
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("Parse(%q) error = %v, want %q", tc.in, err, tc.wantErr)
		case tc.wantErr != "" && m != mode(9):
			t.Errorf("Parse(%q) failed but set %d", tc.in, int(m))
		case tc.wantErr == "" && (err != nil || m != tc.want):
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, m, err, tc.want)
		}
	}
}

func TestEnumErrorListsNames(t *testing.T) {
	for _, tc := range []struct {
		e    config.Enum[codec]
		want string
	}{
		{config.Enum[codec]{{Value: "lz4", Name: "lz4"}}, `want "lz4"`},
		{codecs, `want "lz4" or "none"`},
		{config.Enum[codec]{{Value: "lz4", Name: "lz4"}, {Value: "zstd", Name: "zstd"}, {Value: "none", Name: "none"}}, `want "lz4", "zstd" or "none"`},
	} {
		var c codec
		if err := tc.e.Parse(&c, []byte("gzip")); err == nil || err.Error() != tc.want {
			t.Errorf("Parse error = %v, want %q", err, tc.want)
		}
	}
}

// An enum fills a config field through Load, and the error names the variable and the value.
func TestEnumThroughLoad(t *testing.T) {
	var cfg struct {
		Mode mode `env:"BATCH_MODE" envDefault:"single"`
	}
	if err := config.Load(&cfg, []string{"BATCH_MODE=Json_Array"}); err != nil || cfg.Mode != modeArray {
		t.Fatalf("Load = %v, %v; want array", cfg.Mode, err)
	}
	err := config.Load(&cfg, []string{"BATCH_MODE=zip"})
	const want = `BATCH_MODE="zip": want "single", "array", "json_array" or "stream"`
	if err == nil || !containsLine(err.Error(), want) {
		t.Fatalf("Load error = %v, want a line %q", err, want)
	}
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
