// Command slowlink is a TCP proxy whose uploads go through a link of a
// given rate: what a client sends to the server, over all its connections
// at once, is forwarded at no more than -rate bytes a second; what the
// server sends back is not slowed. bench/push.sh puts it in front of the
// loopback registry, to time pushes over an uplink like a CI runner's.
//
//	slowlink -listen 127.0.0.1:5001 -to 127.0.0.1:5000 -rate 50000000
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5001", "address to accept connections on")
	to := flag.String("to", "127.0.0.1:5000", "address to forward them to")
	rate := flag.Int64("rate", 50_000_000, "upload rate, bytes a second, shared by all connections")
	flag.Parse()
	if *rate <= 0 {
		log.Fatal("slowlink: -rate must be positive")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	l := &link{rate: *rate}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go l.serve(c, *to)
	}
}

// link is the shared uplink: each chunk sent takes its time on it, after
// the chunks sent before it on any connection.
type link struct {
	rate int64
	mu   sync.Mutex
	free time.Time // when the link is done with the chunks so far
}

// slack is how far behind the link may fall and catch up: a sleep that
// overran by less is not lost to the rate (chunks of 64 KiB take ~1 ms at
// 50 MB/s, about what a sleep overruns on a busy machine).
const slack = 20 * time.Millisecond

// take waits until n more bytes have gone through the link.
func (l *link) take(n int) {
	l.mu.Lock()
	now := time.Now()
	if l.free.Before(now.Add(-slack)) {
		l.free = now.Add(-slack)
	}
	l.free = l.free.Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
	until := l.free
	l.mu.Unlock()
	time.Sleep(time.Until(until))
}

func (l *link) serve(c net.Conn, to string) {
	defer func() { _ = c.Close() }()
	s, err := net.Dial("tcp", to)
	if err != nil {
		log.Print(err)
		return
	}
	defer func() { _ = s.Close() }()
	answered := make(chan struct{})
	go func() { // the server's answers, at full speed
		defer close(answered)
		_, _ = io.Copy(c, s)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			l.take(n)
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			break
		}
	}
	_ = s.(*net.TCPConn).CloseWrite()
	<-answered
}
