package harness

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Ports are an agent's listeners on 127.0.0.1. They are kept across restarts: the server's Raft configuration
// records its RPC address, and a single server that comes back on another port cannot elect itself.
type Ports struct {
	HTTP, RPC, Serf int
}

// Free returns an error naming the first of the ports that something already listens on: TCP for all three, UDP
// too for Serf.
func (p Ports) Free() error {
	var errs []error
	for _, c := range []struct {
		port   int
		udpToo bool
	}{{p.HTTP, false}, {p.RPC, false}, {p.Serf, true}} {
		if err := portFree(c.port, c.udpToo); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func portFree(port int, udpToo bool) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return fmt.Errorf("port %d is in use (TCP): %w", port, err)
	}
	defer l.Close()
	if udpToo {
		u, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return fmt.Errorf("port %d is in use (UDP): %w", port, err)
		}
		u.Close()
	}
	return nil
}

// freePorts asks the kernel for three distinct free ports on 127.0.0.1. Serf also listens on UDP, so its port must
// be free for both. Holding every listener until all are chosen keeps the three distinct; another process can
// still take one between here and the agent's bind, which Start detects and answers with new ports.
func freePorts() (Ports, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	pick := func(udpToo bool) (int, error) {
		for attempt := 0; attempt < 20; attempt++ {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("reserving a port: %w", err)
			}
			held = append(held, l)
			port := l.Addr().(*net.TCPAddr).Port
			if !udpToo {
				return port, nil
			}
			u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // taken for UDP: keep the TCP listener so the next pick differs
			}
			u.Close()
			return port, nil
		}
		return 0, fmt.Errorf("no port free for both TCP and UDP")
	}
	var p Ports
	var err error
	if p.HTTP, err = pick(false); err != nil {
		return p, err
	}
	if p.RPC, err = pick(false); err != nil {
		return p, err
	}
	if p.Serf, err = pick(true); err != nil {
		return p, err
	}
	return p, nil
}
