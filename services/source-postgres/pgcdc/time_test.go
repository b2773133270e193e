package pgcdc_test

import (
	"encoding/json"
	"testing"
)

// TestTimestampsBeyondRFC3339: timestamps RFC 3339 cannot hold (years past 9999, BC, infinity)
// come out in UTC ISO 8601 as the README documents, alike in snapshot and stream events.
func TestTimestampsBeyondRFC3339(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE times (id int PRIMARY KEY, tz timestamptz, ts timestamp, arr timestamptz[])")
	values := []struct{ tz, ts, want string }{
		{"2024-02-29 13:14:15.5+02", "2024-02-29 11:14:15.5", `"2024-02-29T11:14:15.5Z"`},
		{"12024-02-29 11:14:15+00", "12024-02-29 11:14:15", `"+12024-02-29T11:14:15Z"`},
		{"294276-12-31 23:59:59.999999+00", "294276-12-31 23:59:59.999999", `"+294276-12-31T23:59:59.999999Z"`},
		{"0044-03-15 12:00:00+00 BC", "0044-03-15 12:00:00 BC", `"-0043-03-15T12:00:00Z"`},
		{"0001-12-31 23:59:59+00 BC", "0001-12-31 23:59:59 BC", `"0000-12-31T23:59:59Z"`},
		{"4714-11-24 00:00:00+00 BC", "4714-11-24 00:00:00 BC", `"-4713-11-24T00:00:00Z"`},
		{"infinity", "infinity", `"infinity"`},
		{"-infinity", "-infinity", `"-infinity"`},
	}
	insert := func(offset int) {
		for i, v := range values {
			p.exec("INSERT INTO times VALUES ($1, $2::timestamptz, $3::timestamp, ARRAY[$2::timestamptz, 'infinity'])", offset+i, v.tz, v.ts)
		}
	}
	insert(0) // read by the snapshot
	r, col, _ := start(t, p, nil, "times")
	insert(100) // streamed
	ms := col.WaitFor(t, "every row twice", atLeast(2*len(values)))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		var ev struct {
			Op    string
			After struct {
				ID          int
				TZ, TS, Arr json.RawMessage
			}
		}
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		want := values[ev.After.ID%100].want
		if string(ev.After.TZ) != want || string(ev.After.TS) != want || string(ev.After.Arr) != "["+want+`,"infinity"]` {
			t.Errorf("%s row %d: tz %s, ts %s, arr %s; want %s", ev.Op, ev.After.ID, ev.After.TZ, ev.After.TS, ev.After.Arr, want)
		}
	}
}
