package monitor

import (
	"net"
	"strconv"
)

// listen listens on addr; a bare port (":9877" or "9877") listens on every
// address.
func listen(addr string) (net.Listener, error) {
	if _, err := strconv.Atoi(addr); err == nil {
		addr = ":" + addr
	}
	return net.Listen("tcp", addr)
}
