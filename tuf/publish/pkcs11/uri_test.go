// SPDX-License-Identifier: Apache-2.0

package pkcs11

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func uintp(n uint) *uint { return &n }

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
	}{
		{"pkcs11:token=fieldgate;object=targets-1", URI{Token: "fieldgate", Object: "targets-1"}},
		{"PKCS11:object=a", URI{Object: "a"}},
		{"pkcs11:", URI{}},
		{"pkcs11:token=fieldgate;object=targets-1;id=%01%AB?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
			URI{Token: "fieldgate", Object: "targets-1", ID: []byte{0x01, 0xab}, ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINValue: "1234"}},
		{"pkcs11:object=k?pin-source=file:/run/fieldgate/pin", URI{Object: "k", PINSource: "file:/run/fieldgate/pin"}},
		{"pkcs11:object=k?pin-source=/run/pin", URI{Object: "k", PINSource: "/run/pin"}},
		// RFC 7512, section 3.7's examples.
		{"pkcs11:object=my-pubkey;type=public", URI{Object: "my-pubkey", Type: "public"}},
		{"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=",
			URI{Token: "The Software PKCS#11 Softtoken", Manufacturer: "Snake Oil, Inc.", Model: "1.0", Object: "my-certificate", Type: "cert",
				ID: []byte{0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91}}},
		{"pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
			URI{Token: "Software PKCS#11 softtoken", Manufacturer: "Snake Oil, Inc.", PINValue: "the-pin"}},
		{"pkcs11:slot-description=Sun%20Metaslot", URI{SlotDescription: "Sun Metaslot"}},
		{"pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
			URI{LibraryManufacturer: "Snake Oil, Inc.", LibraryDescription: "Soft Token Library", LibraryVersion: "1.23"}},
		{"pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%69%95%3E%5C%F4%BD%EC%91;object=my-certificate;type=cert",
			URI{Token: "My token% created by Joe", LibraryVersion: "3", ID: []byte{0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91}, Object: "my-certificate", Type: "cert"}},
		{"pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=public",
			URI{Token: "A name with a substring %;", Object: "my-certificate", Type: "public"}},
		{"pkcs11:slot-id=3;slot-manufacturer=x;x-vendor=ignored?x-other=1&module-name=softhsm2",
			URI{SlotID: uintp(3), SlotManufacturer: "x", ModuleName: "softhsm2"}},
		{"pkcs11:token=caf%C3%A9", URI{Token: "café"}},
		{"pkcs11:object=a=b", URI{Object: "a=b"}},
	}
	for _, tt := range tests {
		got, err := ParseURI(tt.in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(&tt.want, got); diff != "" {
			t.Errorf("ParseURI(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseURIErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "does not start with pkcs11:"},
		{"file:/x", "does not start with pkcs11:"},
		{"pkcs11", "does not start with pkcs11:"},
		{"pkcs11:object", "not name=value"},
		{"pkcs11:=x", "not name=value"},
		{"pkcs11:object=a;object=b", "given twice"},
		{"pkcs11:object=a?pin-value=1&pin-value=2", "given twice"},
		{"pkcs11:colour=blue", `unknown attribute "colour"`},
		{"pkcs11:object=a?colour=blue", `unknown query attribute "colour"`},
		{"pkcs11:id=%0", "truncated escape"},
		{"pkcs11:id=%", "truncated escape"},
		{"pkcs11:id=%zz", "bad escape"},
		{"pkcs11:id=", "id is empty"},
		{"pkcs11:object=a%00b", "control character"},
		{"pkcs11:object=a%0Ab", "control character"},
		{"pkcs11:object=%FF", "not valid UTF-8"},
		{"pkcs11:object=a b", "must be percent-encoded"},
		{"pkcs11:object=a/b", "must be percent-encoded"},
		{"pkcs11:object=a\x00", "must be percent-encoded"},
		{"pkcs11:object=a#frag", "fragment"},
		{"pkcs11:type=secret", `type "secret"`},
		{"pkcs11:slot-id=-1", "slot-id"},
		{"pkcs11:slot-id=99999999999", "slot-id"},
		{"pkcs11:library-version=1.2.3", "library-version"},
		{"pkcs11:library-version=300", "library-version"},
		{"pkcs11:object=a?module-path=relative/lib.so", "not an absolute path"},
		{"pkcs11:object=a?pin-source=pin.txt", "pin-source"},
		{"pkcs11:object=a?pin-source=https://example.com/pin", "pin-source"},
		{"pkcs11:object=a?pin-source=file:/p&pin-value=1", "both given"},
		{"pkcs11:object=" + strings.Repeat("a", maxURILen), "at most"},
	}
	for _, tt := range tests {
		_, err := ParseURI(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURI(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestURIString: String leaves the PIN out and reads back as the same URI.
func TestURIString(t *testing.T) {
	in := "pkcs11:token=My%20token;object=targets%3B1;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=secret-pin"
	u, err := ParseURI(in)
	if err != nil {
		t.Fatal(err)
	}
	s := u.String()
	if strings.Contains(s, "secret-pin") || strings.Contains(s, "pin-value") {
		t.Errorf("String() = %q, shows the PIN", s)
	}
	want := "pkcs11:token=My%20token;object=targets%3B1;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so"
	if s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	back, err := ParseURI(u.format(true))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u, back); diff != "" {
		t.Errorf("ParseURI(format(true)) (-want +got):\n%s", diff)
	}
}

func TestURIPIN(t *testing.T) {
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("from-file\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPIN, "from-env")
	tests := []struct {
		uri, want string
		ok        bool
		err       string
	}{
		{"pkcs11:object=a?pin-value=from-uri", "from-uri", true, ""},
		{"pkcs11:object=a?pin-source=file:" + pinFile, "from-file", true, ""},
		{"pkcs11:object=a?pin-source=" + pinFile, "from-file", true, ""},
		{"pkcs11:object=a", "from-env", true, ""},
		{"pkcs11:object=a?pin-source=file:" + empty, "", false, "is empty"},
		{"pkcs11:object=a?pin-source=file:" + filepath.Join(dir, "missing"), "", false, "no such file"},
	}
	for _, tt := range tests {
		u, err := ParseURI(tt.uri)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := u.pin()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("pin(%q) error = %v, want %q", tt.uri, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || ok != tt.ok {
			t.Errorf("pin(%q) = %q, %v, %v, want %q, %v", tt.uri, got, ok, err, tt.want, tt.ok)
		}
	}
	t.Setenv(EnvPIN, "")
	u, _ := ParseURI("pkcs11:object=a")
	if _, ok, err := u.pin(); ok || err != nil {
		t.Errorf("pin() without any source = ok %v, %v, want no PIN and no error", ok, err)
	}
}

func TestURIModulePath(t *testing.T) {
	t.Setenv(EnvModule, "/env/module.so")
	u, _ := ParseURI("pkcs11:object=a?module-path=/uri/module.so")
	if got, err := u.modulePath(); got != "/uri/module.so" || err != nil {
		t.Errorf("modulePath() = %q, %v, want the URI's", got, err)
	}
	u, _ = ParseURI("pkcs11:object=a")
	if got, err := u.modulePath(); got != "/env/module.so" || err != nil {
		t.Errorf("modulePath() = %q, %v, want $%s", got, err, EnvModule)
	}
	t.Setenv(EnvModule, "")
	if _, err := u.modulePath(); err == nil || !strings.Contains(err.Error(), "module-path") {
		t.Errorf("modulePath() without one = %v, want an error saying how to give it", err)
	}
	t.Setenv(EnvModule, "relative.so")
	if _, err := u.modulePath(); err == nil {
		t.Error("modulePath() with a relative $FIELDGATE_PKCS11_MODULE: no error")
	}
}

// FuzzParseURI: no input panics, and whatever parses prints back (with the
// PIN) to a URI that parses to the same thing.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=fieldgate;object=targets-1;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
		"pkcs11:object=a?pin-source=file:/run/pin",
		"pkcs11:slot-id=3;library-version=1.23;type=private;x-a=b?x-b=c&module-name=m",
		"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;serial=",
		"pkcs11:id=%zz", "pkcs11:object=a;object=b", "pkcs11:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		out := u.format(true)
		back, err := ParseURI(out)
		if err != nil {
			t.Fatalf("ParseURI(%q) ok, but its formatting %q does not parse: %v", s, out, err)
		}
		if diff := cmp.Diff(u, back); diff != "" {
			t.Fatalf("ParseURI(%q) then format and parse again (-want +got):\n%s", s, diff)
		}
		if u.PINValue != "" && strings.Contains(u.String(), "pin-value") {
			t.Fatalf("String() of %q shows pin-value", s)
		}
	})
}
