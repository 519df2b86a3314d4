// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// This example is one update cycle of the gateway: a vendor publishes two
// firmware images, the gateway refreshes the signed metadata starting from
// the root it was shipped with, selects the image for one device and
// streams it into its blob store, verified.
func Example() {
	dir, err := os.MkdirTemp("", "tuf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The vendor's side: a signed repository (fieldgate-repo does this,
	// with every key encrypted under a passphrase; an example keeps them
	// in plaintext, explicitly).
	repo, err := publish.Init(filepath.Join(dir, "repo"), publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []struct {
		version string
		counter uint64
	}{{"2.3.0", 2}, {"2.4.1", 3}} {
		meta := tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: v.version, SecurityCounter: v.counter, Protocol: "xmodem"}
		if err := repo.AddTargetBytes("acme-io16/fw-"+v.version+".bin", []byte("acme io16 firmware "+v.version), meta); err != nil {
			log.Fatal(err)
		}
	}
	if err := repo.Commit(); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(repo.Handler())
	defer srv.Close()

	// The gateway's side.
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: filepath.Join(dir, "gateway", "metadata"),
		BlobDir:     filepath.Join(dir, "gateway", "blobs"),
		TrustedRoot: repo.RootPath(), // shipped with the gateway
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	snap, err := c.Refresh(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range snap.Targets {
		fmt.Printf("%s: version %s, security counter %d\n", t.Name, t.Meta.Version, t.Meta.SecurityCounter)
	}

	// The device runs 2.3.0; its anti-rollback floor is 2.
	t, ok, reason := tuf.Select(snap.Targets, "acme-io16-rev3", "2.3.0", 2)
	if !ok {
		log.Fatal(reason)
	}
	blob, err := c.Fetch(ctx, t, nil)
	if err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(blob)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("selected %s, fetched %d bytes: %q\n", t.Name, len(data), data)
	fmt.Println("blob named by its sha256:", filepath.Base(blob) == t.SHA256())

	// Nothing newer for a device already running 2.4.1.
	_, ok, reason = tuf.Select(snap.Targets, "acme-io16-rev3", "2.4.1", 3)
	fmt.Println(ok, reason)

	// Output:
	// acme-io16/fw-2.3.0.bin: version 2.3.0, security counter 2
	// acme-io16/fw-2.4.1.bin: version 2.4.1, security counter 3
	// selected acme-io16/fw-2.4.1.bin, fetched 24 bytes: "acme io16 firmware 2.4.1"
	// blob named by its sha256: true
	// false no target newer than installed 2.4.1 (newest for acme-io16-rev3 is 2.4.1)
}

// A client that keeps its trusted metadata and targets as plain files, as
// fieldgatectl tuf does for the TUF conformance suite: the metadata
// directory is seeded with the trusted root, and DownloadTargets refreshes
// and stores verified targets under their escaped names.
func ExampleClient_DownloadTargets() {
	dir, err := os.MkdirTemp("", "tuf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	repo, err := publish.Init(filepath.Join(dir, "repo"), publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		log.Fatal(err)
	}
	meta := tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: "2.4.1", SecurityCounter: 3}
	if err := repo.AddTargetBytes("acme-io16/fw-2.4.1.bin", []byte("acme io16 firmware 2.4.1"), meta); err != nil {
		log.Fatal(err)
	}
	if err := repo.Commit(); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(repo.Handler())
	defer srv.Close()

	md, targets := filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
	if err := tuf.InitMetadataDir(md, repo.RootPath()); err != nil {
		log.Fatal(err)
	}
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: md,
		BlobDir:     filepath.Join(dir, "blobs"), // not used by DownloadTargets
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.DownloadTargets(context.Background(), targets, []string{"acme-io16/fw-2.4.1.bin"}); err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(targets, url.PathEscape("acme-io16/fw-2.4.1.bin")))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", data)
	for _, name := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		_, err := os.Stat(filepath.Join(md, name))
		fmt.Println(name, err == nil)
	}

	// Output:
	// acme io16 firmware 2.4.1
	// root.json true
	// timestamp.json true
	// snapshot.json true
	// targets.json true
}

// Select is a pure function of the verified targets and what the gateway
// knows about the device: it never offers a downgrade or an image below the
// device's security floor, and says why when it offers nothing.
func ExampleSelect() {
	targets := []tuf.Target{
		{Name: "io16/fw-2.3.0.bin", Meta: tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: "2.3.0", SecurityCounter: 2}},
		{Name: "io16/fw-2.4.1.bin", Meta: tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: "2.4.1", SecurityCounter: 3}},
		{Name: "plc/fw-9.0.bin", Meta: tuf.Meta{Hardware: []string{"plc-x"}, Version: "9.0", SecurityCounter: 1}},
	}
	t, ok, _ := tuf.Select(targets, "acme-io16-rev3", "2.3.0", 2)
	fmt.Println(t.Name, ok)
	_, ok, reason := tuf.Select(targets, "acme-io16-rev3", "2.4.1", 3)
	fmt.Println(ok, reason)
	_, ok, reason = tuf.Select(targets, "acme-io16-rev3", "", 4)
	fmt.Println(ok, reason)
	// Output:
	// io16/fw-2.4.1.bin true
	// false no target newer than installed 2.4.1 (newest for acme-io16-rev3 is 2.4.1)
	// false target io16/fw-2.4.1.bin (version 2.4.1) refused: security counter 3 is below the device floor 4
}
