// Command netcheck is the real-node smoke test's whole image (jobwarden.local/netcheck:1): a
// TCP server and a client, so two pods prove they reach each other by a name CoreDNS resolves.
//
//	netcheck serve PORT          answer each connection with "hello from <hostname>\n"
//	netcheck dial NAME:PORT      resolve NAME (Go's resolver: /etc/resolv.conf, its search list
//	                             and ndots), connect, print "resolved NAME to IP" and the answer;
//	                             retries for 60 s, exits 1 if it never got an answer
//	nslookup NAME                (invoked under that name) resolve NAME once through the search
//	                             list: print its addresses and exit 0, or exit 1
//
// The last stands in for busybox's nslookup in jobwarden.local/busybox:1: busybox 1.35's queries
// every search domain and fails when any of them is NXDOMAIN, even after one answered, so a
// wait-for-DNS loop (the PyTorch init container's) would never end.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if filepath.Base(os.Args[0]) == "nslookup" {
		nslookup(os.Args[1:])
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: netcheck serve PORT | netcheck dial NAME:PORT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "dial":
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := dial(os.Args[2])
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				fmt.Println("giving up:", err)
				os.Exit(1)
			}
			fmt.Println("retrying:", err)
			time.Sleep(time.Second)
		}
	default:
		os.Exit(2)
	}
}

func serve(port string) {
	hostname, _ := os.Hostname()
	listener, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("serving on", listener.Addr())
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		fmt.Println("connection from", conn.RemoteAddr())
		fmt.Fprintf(conn, "hello from %s\n", hostname)
		conn.Close()
	}
}

func dial(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return err
	}
	addrs, err := net.LookupHost(host)
	if err != nil {
		return err
	}
	fmt.Printf("resolved %s to %v\n", host, addrs)
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(addrs[0], port), 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Print("answer: ", line)
	return nil
}

func nslookup(args []string) {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: nslookup NAME")
		os.Exit(2)
	}
	addrs, err := net.LookupHost(args[0])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Printf("Name:\t%s\n", args[0])
	for _, addr := range addrs {
		fmt.Printf("Address: %s\n", addr)
	}
}
