package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestZZCapture2(t *testing.T) {
	m := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin := buildAll(t)
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: 1, Baud: -1, Broker: m.url(), Tamper: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	f, _ := os.Create("/tmp/fg-capture2.txt")
	sub := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(m.port), "-v", "-q", "1", "-t", "fieldgate/v1/#")
	sub.Stdout = f
	sub.Start()
	defer func() { sub.Process.Kill(); sub.Wait(); f.Close() }()
	time.Sleep(500 * time.Millisecond)
	env.StartDaemon()
	time.Sleep(8 * time.Second)
}
