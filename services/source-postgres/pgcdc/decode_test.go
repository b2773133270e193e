package pgcdc

import (
	"encoding/binary"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// insertMessage is a pgoutput INSERT of the bench case's row (int key, text, numeric, timestamptz).
func insertMessage(relID uint32) []byte {
	b := []byte{'I'}
	b = binary.BigEndian.AppendUint32(b, relID)
	b = append(b, 'N')
	cols := []string{"12345", "row 12345", "15431.25", "2026-12-01 22:05:05.123456+00"}
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		b = append(b, 't')
		b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// BenchmarkDecodeInsert is the connector's own cost per streamed change: pgoutput decoding, the
// JSON event, the routing key (go test -run '^$' -bench DecodeInsert -benchmem).
func BenchmarkDecodeInsert(b *testing.B) {
	cfg := &Config{Database: "bench", Tables: []string{"stream_rows"}}
	s := newSource(cfg, runtime.Resources{})
	s.info = map[Table]tableInfo{{"public", "stream_rows"}: {pk: []string{"id"}, identity: 'd'}}
	st := &stream{src: s, relations: map[uint32]*relation{}, enc: encoder{db: cfg.Database}, inTx: true,
		tx: source{lsn: 1, txid: 731}}
	if err := st.relation(&pglogrepl.RelationMessage{RelationID: 7, Namespace: "public", RelationName: "stream_rows",
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "id", DataType: 23}, {Name: "v", DataType: 25}, {Name: "amount", DataType: 1700}, {Name: "at", DataType: 1184},
		}}); err != nil {
		b.Fatal(err)
	}
	x := pglogrepl.XLogData{WALStart: 0x16B3748, WALData: insertMessage(7)}
	b.ReportAllocs()
	for b.Loop() {
		recs, err := st.decode(x)
		if err != nil || len(recs) != 1 {
			b.Fatal(recs, err)
		}
	}
}

func TestAppendLSN(t *testing.T) {
	for _, lsn := range []LSN{0, 0x16B3748, 0xFFFFFFFFFFFFFFFF, 0x1_0000000A} {
		if got := string(appendLSN(nil, lsn)); got != lsn.String() {
			t.Errorf("appendLSN(%d) = %s, want %s", lsn, got, lsn.String())
		}
	}
}
