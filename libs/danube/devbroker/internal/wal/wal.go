// Package wal is the development broker's append-only message log: one file
// per reliable topic, one CRC-protected record per message, so a restart can
// resume where the broker stopped and a torn write never takes the broker down.
//
// Record layout (little endian):
//
//	[u64 offset][u32 payload length][u32 CRC-32C of offset|length|payload][payload]
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
)

const headerSize = 16

// MaxRecordSize bounds a single payload; anything larger on disk is treated as
// corruption rather than an allocation request.
const MaxRecordSize = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Log is an open append-only log file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	next uint64
	buf  []byte
	sync func(*os.File) error

	// syncMu serializes fsyncs so that callers waiting for the same records
	// share one: a caller whose records an earlier fsync covered returns at
	// once (group commit).
	syncMu sync.Mutex
	synced uint64 // every record below is on stable storage
}

// Options tunes Open.
type Options struct {
	// Sync flushes the file to stable storage; nil means (*os.File).Sync.
	// Tests replace it to make fsync fail.
	Sync func(*os.File) error
}

// Record is one message read back from the log.
type Record struct {
	Offset  uint64
	Payload []byte
}

// Open opens (or creates) the log at path, calls fn for every intact record in
// order, and truncates the file after the last intact record so that a torn
// tail left by a crash is discarded instead of failing the open. Records must
// carry contiguous offsets; a gap is treated like corruption.
func Open(path string, opts Options, fn func(Record) error) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: open %q: %w", path, err)
	}
	l := &Log{f: f, sync: opts.Sync}
	if l.sync == nil {
		l.sync = (*os.File).Sync
	}
	good, err := l.replay(fn)
	if err != nil {
		_ = f.Close() // the open failed: its error is the one to report
		return nil, err
	}
	if err := f.Truncate(good); err != nil {
		_ = f.Close() // the open failed: its error is the one to report
		return nil, fmt.Errorf("wal: truncate %q at %d: %w", path, good, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		_ = f.Close() // the open failed: its error is the one to report
		return nil, fmt.Errorf("wal: seek %q: %w", path, err)
	}
	// What replay read is what a crash would keep only once synced: a torn
	// tail was just cut, and records may sit in the page cache of a process
	// that died before its fsync.
	if err := l.sync(f); err != nil {
		_ = f.Close() // the open failed: its error is the one to report
		return nil, fmt.Errorf("wal: sync %q: %w", path, err)
	}
	l.synced = l.next
	return l, nil
}

// replay reads records from the start and returns the byte position after the
// last intact one.
func (l *Log) replay(fn func(Record) error) (int64, error) {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("wal: seek: %w", err)
	}
	r := &countingReader{r: l.f}
	var hdr [headerSize]byte
	var pos int64
	first := true
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return pos, nil //nolint:nilerr // clean EOF or torn header: the log ends at the last whole record
		}
		off := binary.LittleEndian.Uint64(hdr[0:8])
		n := binary.LittleEndian.Uint32(hdr[8:12])
		sum := binary.LittleEndian.Uint32(hdr[12:16])
		if n > MaxRecordSize || (!first && off != l.next) {
			return pos, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return pos, nil //nolint:nilerr // torn payload: the log ends at the last whole record
		}
		if checksum(hdr[0:12], payload) != sum {
			return pos, nil
		}
		if err := fn(Record{Offset: off, Payload: payload}); err != nil {
			return 0, err
		}
		first = false
		l.next = off + 1
		pos = r.n
	}
}

// SetNext sets the offset the next Append must carry; used for an empty log
// whose topic already had messages (never needed once a record exists).
func (l *Log) SetNext(next uint64) {
	l.mu.Lock()
	l.next = next
	l.mu.Unlock()
	l.syncMu.Lock()
	l.synced = max(l.synced, next)
	l.syncMu.Unlock()
}

// Reset empties the log durably; the next Append must carry offset next.
// A crash during Reset leaves either the old records or none, so a caller
// that must not replay them records next elsewhere first.
func (l *Log) Reset(next uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("wal: reset of a closed log")
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("wal: reset: %w", err)
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("wal: reset: %w", err)
	}
	if err := l.sync(l.f); err != nil {
		return fmt.Errorf("wal: reset: sync: %w", err)
	}
	l.next, l.synced = next, next
	return nil
}

// Next is the offset the next appended record must carry.
func (l *Log) Next() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Append writes one record with the given offset. Offsets must be contiguous.
// The write is only handed to the OS; SyncThrough makes it durable.
func (l *Log) Append(offset uint64, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("wal: append on closed log")
	}
	if offset != l.next {
		return fmt.Errorf("wal: append offset %d, want %d", offset, l.next)
	}
	if len(payload) > MaxRecordSize {
		return fmt.Errorf("wal: payload of %d bytes exceeds %d", len(payload), MaxRecordSize)
	}
	need := headerSize + len(payload)
	if cap(l.buf) < need {
		l.buf = make([]byte, need)
	}
	b := l.buf[:need]
	binary.LittleEndian.PutUint64(b[0:8], offset)
	binary.LittleEndian.PutUint32(b[8:12], uint32(len(payload)))
	copy(b[headerSize:], payload)
	binary.LittleEndian.PutUint32(b[12:16], checksum(b[0:12], payload))
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("wal: append offset %d: %w", offset, err)
	}
	l.next = offset + 1
	return nil
}

// SyncThrough returns once every record below offset next is on stable
// storage. Concurrent callers share fsyncs, and the fsync runs without
// blocking Append, so producers appending while one fsync runs are covered
// by the next.
func (l *Log) SyncThrough(next uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= next {
		return nil
	}
	l.mu.Lock()
	f, target := l.f, l.next
	l.mu.Unlock()
	if f == nil {
		return errors.New("wal: sync of a closed log")
	}
	if err := l.sync(f); err != nil {
		return fmt.Errorf("wal: sync: %w", err)
	}
	l.synced = target
	return nil
}

// Sync flushes every appended record to stable storage.
func (l *Log) Sync() error {
	l.mu.Lock()
	next := l.next
	l.mu.Unlock()
	return l.SyncThrough(next)
}

// Close syncs and closes the file; it is idempotent.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	serr := l.sync(l.f)
	if serr == nil {
		l.synced = l.next // a SyncThrough that lost the race with Close succeeds
	}
	err := errors.Join(serr, l.f.Close())
	l.f = nil
	return err
}

func checksum(hdr, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr)
	return crc32.Update(c, castagnoli, payload)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
