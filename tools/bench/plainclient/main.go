// Command plainclient is the yardstick of the bench tool's sink-http case: a plain Go HTTP client
// posting n 1 KiB bodies to one URL from c goroutines sharing one keep-alive pool, the least work
// any HTTP sink has to do per message. It is a binary of its own, not the bench command started
// again, so that its start-up CPU and RSS are a small program's.
//
// After the last response it waits for SIGTERM, so that the bench tool can read its peak RSS
// from /proc while it still runs.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

func main() {
	url := flag.String("url", "", "receiver URL")
	n := flag.Int("n", 1000, "messages to post")
	c := flag.Int("c", 1, "concurrent requests")
	flag.Parse()
	if *url == "" || *n < 1 || *c < 1 {
		fmt.Fprintln(os.Stderr, "plainclient: -url is required; -n and -c must be positive")
		os.Exit(2)
	}
	// Before the first request: the bench tool may send SIGTERM as soon as the last one arrives.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := post(*url, *n, *c)
	if err == nil {
		<-ctx.Done()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "plainclient:", err)
		os.Exit(1)
	}
}

func post(url string, n, c int) error {
	payload := bytes.Repeat([]byte("x"), 1024)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := hc.Post(url, "application/octet-stream", bytes.NewReader(payload))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %s", resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
