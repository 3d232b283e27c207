package main

import (
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/internal/bound"
)

// fdReserve is how many file descriptors the connections leave to the
// storage (Badger's tables and logs), the key files and the rest.
const fdReserve = 1024

// defaultMaxConnections is max_connections when not set: what the file
// descriptor limit leaves after fdReserve (Go raises the soft limit to the
// hard one), at least 64.
func defaultMaxConnections() int {
	n, ok := fdLimit()
	if !ok {
		return 10_000
	}
	return int(max(min(n-fdReserve, 1<<20), 64))
}

// limitListener accepts at most total connections open at once, and
// perIP (0: any number) from one remote address (an IPv6 /64: perIPKey);
// a connection beyond is closed as soon as it is accepted (the client sees
// it reset, and may retry), so that the listener goes on draining the
// kernel's queue. Twenty
// thousand idle keep-alive connections, without a key, had taken every
// file descriptor: new clients could not connect, /readyz included, and
// storage could not open files.
type limitListener struct {
	net.Listener
	total   int
	count   *bound.Counter[netip.Addr]
	refused *prometheus.CounterVec
}

func newLimitListener(lis net.Listener, total, perIP int, reg prometheus.Registerer) *limitListener {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accessledger_connections_refused_total",
		Help: "Connections closed as soon as accepted: max_connections open (reason total), or max_connections_per_ip from one address (per_ip).",
	}, []string{"reason"})
	if reg != nil {
		reg.MustRegister(refused)
	}
	// Both series exist from the start, at 0, so that a rule on their
	// rate sees the first refusal.
	refused.WithLabelValues("total")
	refused.WithLabelValues("per_ip")
	return &limitListener{Listener: lis, total: total, count: bound.New[netip.Addr](total, perIP), refused: refused}
}

// Accept returns the next connection within the bounds.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var ip netip.Addr
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			ip = perIPKey(ap.Addr())
		}
		ok, n, _ := l.count.Take(ip)
		if ok {
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		reason := "per_ip"
		if n >= l.total {
			reason = "total"
		}
		l.refused.WithLabelValues(reason).Inc()
		c.Close()
	}
}

// perIPKey returns what max_connections_per_ip counts connections by: an
// IPv4 address, or an IPv6 address's /64. One host (or one customer) is
// given a /64, and picks any address in it at will: counted by address,
// it had 2^64 times the bound.
func perIPKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a
}

// limitedConn gives its place back when it is closed (once, however often
// Close is called).
type limitedConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.count.Done(c.ip) })
	return err
}

// CloseWrite half-closes a TCP connection, as net/http does after an
// answer given before the request's body was read (413, 503), so that the
// client reads the answer rather than a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
