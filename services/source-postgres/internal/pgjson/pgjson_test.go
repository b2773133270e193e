package pgjson_test

import (
	"encoding/json"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/services/source-postgres/internal/pgjson"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAppend(t *testing.T) {
	for _, c := range []struct {
		oid        uint32
		text, want string
	}{
		{pgjson.Int8, "-9007199254740993", "-9007199254740993"},
		{pgjson.Bool, "t", "true"},
		{pgjson.Float8, "NaN", `"NaN"`},
		{pgjson.Float8, "-1.5e+300", "-1.5e+300"},
		{pgjson.Numeric, "0.1000000000000000000001", `"0.1000000000000000000001"`},
		{pgjson.Bytea, `\x00ff`, `"AP8="`},
		{pgjson.Timestamptz, "2024-01-02 03:04:05+05:30", `"2024-01-01T21:34:05Z"`},
		{pgjson.Timestamptz, "infinity", `"infinity"`},
		{pgjson.Timestamp, "2024-01-02 03:04:05.000001", `"2024-01-02T03:04:05.000001Z"`},
		{pgjson.Timestamptz, "2024-02-29 11:14:15.5+00", `"2024-02-29T11:14:15.5Z"`},
		{pgjson.Timestamptz, "2024-02-29 11:14:15+00", `"2024-02-29T11:14:15Z"`},
		{pgjson.Timestamptz, "12024-02-29 11:14:15+00", `"+12024-02-29T11:14:15Z"`},
		{pgjson.Timestamptz, "294276-12-31 23:59:59.999999+00", `"+294276-12-31T23:59:59.999999Z"`},
		{pgjson.Timestamptz, "10000-01-01 00:30:00+01", `"9999-12-31T23:30:00Z"`},
		{pgjson.Timestamptz, "0044-03-15 12:00:00+00 BC", `"-0043-03-15T12:00:00Z"`},
		{pgjson.Timestamptz, "0001-12-31 23:59:59.5+00 BC", `"0000-12-31T23:59:59.5Z"`},
		{pgjson.Timestamptz, "4714-11-24 00:00:00+00 BC", `"-4713-11-24T00:00:00Z"`},
		{pgjson.Timestamptz, "0005-02-29 00:00:00+00 BC", `"-0004-02-29T00:00:00Z"`},
		{pgjson.Timestamptz, "-infinity", `"-infinity"`},
		{pgjson.Timestamp, "infinity", `"infinity"`},
		{pgjson.Timestamp, "12024-02-29 11:14:15.25", `"+12024-02-29T11:14:15.25Z"`},
		{pgjson.Timestamp, "2024-02-29 11:14:15", `"2024-02-29T11:14:15Z"`},
		{pgjson.Timestamp, "2024-01-02 03:04:05.100", `"2024-01-02T03:04:05.1Z"`},
		{pgjson.Timestamp, "0044-03-15 12:00:00 BC", `"-0043-03-15T12:00:00Z"`},
		{pgjson.JSONB, `{"a": 1}`, `{"a": 1}`},
		{1007, "{{1,2},{3,NULL}}", "[[1,2],[3,null]]"},
		{1009, `{"a\"b","c\\d",NULL,"NULL"}`, `["a\"b","c\\d",null,"NULL"]`},
		{1007, "[0:1]={7,8}", "[7,8]"},
		{99999, "some \x01 text \xff", `"some \u0001 text \ufffd"`},
	} {
		got, err := pgjson.Append(nil, c.oid, []byte(c.text))
		if err != nil || string(got) != c.want {
			t.Errorf("Append(%d, %q) = %s, %v; want %s", c.oid, c.text, got, err, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("Append(%d, %q) = %s: not valid JSON", c.oid, c.text, got)
		}
	}
}

func TestAppendRejectsWhatItCannotEncode(t *testing.T) {
	for _, c := range []struct {
		oid        uint32
		text, want string
	}{
		{pgjson.Int4, "12a", `invalid integer "12a"`},
		{pgjson.Bool, "yes", `invalid boolean "yes"`},
		{pgjson.Bytea, `\xzz`, "invalid bytea: encoding/hex: invalid byte: U+007A 'z'"},
		{1007, "{1,2", `invalid array "{1,2": unterminated`},
	} {
		if _, err := pgjson.Append(nil, c.oid, []byte(c.text)); err == nil || err.Error() != c.want {
			t.Errorf("Append(%d, %q) error %v, want %q", c.oid, c.text, err, c.want)
		}
	}
}
