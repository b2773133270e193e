package chsink

import "testing"

// TestConfigEnums: UNKNOWN_FIELDS and CH_COMPRESSION take their names in any case and name what
// they accept.
func TestConfigEnums(t *testing.T) {
	var u UnknownFields
	if err := u.UnmarshalText([]byte(" Error ")); err != nil || u != RejectUnknown || u.String() != "error" || IgnoreUnknown.String() != "ignore" {
		t.Fatalf("UnknownFields: %v %v", u, err)
	}
	if err := u.UnmarshalText([]byte("drop")); err == nil || err.Error() != `want "ignore" or "error"` {
		t.Fatalf("UnknownFields error: %v", err)
	}
	var c Compression
	if err := c.UnmarshalText([]byte("ZSTD")); err != nil || c != "zstd" {
		t.Fatalf("Compression: %q %v", c, err)
	}
	if err := c.UnmarshalText([]byte("gzip")); err == nil || err.Error() != `want "lz4", "zstd" or "none"` || c != "zstd" {
		t.Fatalf("Compression error: %v (%q)", err, c)
	}
}
