// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// vendorCmds are the commands for roles a vendor signs on its own machine:
// the vendor's side (vendor …) and the operator's (import-role). delegate
// and rotate (main.go) take the vendor's public keys.
func vendorCmds() []*cobra.Command {
	v := &cobra.Command{
		Use:   "vendor",
		Short: "Sign a delegated role on the vendor's own machine, with only that role's key",
		Long: "vendor works in a vendor directory VDIR holding one delegated role's targets. The\n" +
			"vendor needs only the role's key (a key file or a pkcs11: URI), never the\n" +
			"repository's:\n\n" +
			"  fieldgate-repo vendor init VDIR ROLE --new-key acme.pem   (or --key KEY|pkcs11:…)\n" +
			"  fieldgate-repo vendor add VDIR FILE --name acme-io16/fw-2.5.0.bin --hardware … --version …\n" +
			"  fieldgate-repo vendor sign VDIR --expires 90d\n\n" +
			"init writes VDIR/ROLE.pub: the operator delegates to it (delegate DIR ROLE --path …\n" +
			"--key-file ROLE.pub). sign writes VDIR/out (ROLE.json and targets/): send that\n" +
			"directory to the operator, who runs import-role DIR OUT and commit.",
	}
	v.AddCommand(vendorInitCmd(), vendorAddCmd(), vendorRemoveCmd(), vendorSignCmd(), vendorStatusCmd())
	return []*cobra.Command{delegateCmd(), v, importRoleCmd()}
}

// vendorKeyAccess says how the vendor's key files are read and written:
// keyAccess (keys.go): --passphrase-fd, $FIELDGATE_REPO_PASSPHRASE or the
// terminal, plaintext only with --insecure-plaintext-keys.
func vendorKeyAccess(cmd *cobra.Command) publish.KeyAccess { return keyAccess(cmd) }

func addKeyAccessFlags(c *cobra.Command) {
	if c.Flags().Lookup("insecure-plaintext-keys") == nil && c.InheritedFlags().Lookup("insecure-plaintext-keys") == nil {
		c.Flags().Bool("insecure-plaintext-keys", false, "read and write unencrypted key files (tests only)")
	}
}

func delegateCmd() *cobra.Command {
	var (
		d        publish.Delegation
		keyFiles []string
	)
	c := &cobra.Command{
		Use:   "delegate DIR ROLE --path PATTERN [--path PATTERN…] (--key-file PUB… | --keys-dir DIR)",
		Short: "Delegate target paths to a vendor role with its own keys (commit publishes it)",
		Long: "delegate creates (or updates the paths of) a role that the top-level targets role\n" +
			"trusts only for targets matching the path patterns (\"*\" stays within one path\n" +
			"segment: acme-io16/* matches acme-io16/fw.bin, not acme-io16/a/fw.bin).\n\n" +
			"A vendor that signs its own role gives you only its public key: --key-file\n" +
			"ROLE.pub (a PEM public key or a TUF key object; repeatable) or --key-file\n" +
			"pkcs11:… (read from the token). The vendor then signs the role with fieldgate-repo\n" +
			"vendor on its machine, and you take its metadata in with import-role before\n" +
			"commit. Otherwise the role's private keys are read from --keys-dir (generated there\n" +
			"if it holds none; default DIR/keys/ROLE) and commit signs it here; add its targets\n" +
			"with add --role ROLE.\n\n" +
			"On an existing role, a change of its keys or threshold is refused unless\n" +
			"--replace-keys is given (or use rotate DIR ROLE --key-file NEW.pub).",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("threshold") {
				d.Threshold = 0
			}
			pubs, err := readDelegationKeys(keyFiles, vendorKeyAccess(cmd))
			if err != nil {
				return err
			}
			d.Keys = pubs
			r, err := publish.OpenWith(args[0], publish.Options{Keys: vendorKeyAccess(cmd), Command: "delegate"})
			if err != nil {
				return err
			}
			if err := r.Delegate(args[1], d); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "delegated %s to role %s (run commit to publish)\n", strings.Join(d.Paths, ", "), args[1])
			if len(pubs) > 0 {
				fmt.Fprintf(w, "role %s is signed by the holder of its key(s) %s: import their metadata with import-role %s VDIR/out before commit\n",
					args[1], strings.Join(ids(pubs), ", "), args[0])
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&d.Paths, "path", nil, "target path pattern the role is trusted for (repeatable), e.g. 'acme-io16/*'")
	f.StringArrayVar(&keyFiles, "key-file", nil, "the role's public key: PEM or TUF key JSON file, or pkcs11: URI (repeatable)")
	f.StringVar(&d.KeysDir, "keys-dir", "", "directory of the role's private keys, when they are kept here; default DIR/keys/ROLE")
	f.IntVar(&d.Threshold, "threshold", 1, "signatures required (= keys generated if --keys-dir holds none)")
	f.BoolVar(&d.Terminating, "terminating", false, "no later delegation is consulted for paths this role matches")
	f.BoolVar(&d.ReplaceKeys, "replace-keys", false, "replace the keys (and threshold) of an existing role")
	addKeyAccessFlags(c)
	return c
}

// readDelegationKeys reads public keys given with --key-file.
func readDelegationKeys(refs []string, ka publish.KeyAccess) ([]*publish.Key, error) {
	var out []*publish.Key
	for _, ref := range refs {
		k, err := publish.DelegationKey(ref, ka)
		if err != nil {
			return nil, fmt.Errorf("--key-file: %w", err)
		}
		out = append(out, k)
	}
	return out, nil
}

func ids(keys []*publish.Key) []string {
	var out []string
	for _, k := range keys {
		id, _ := k.ID()
		out = append(out, id)
	}
	return out
}

// rotateDelegated is rotate for a delegated role: new public keys (a
// vendor's) from --key-file, or new keys generated here for a role whose
// keys are here; then commit signs the top-level targets with the new
// delegation.
func rotateDelegated(cmd *cobra.Command, r *publish.Repo, role string, keyFiles []string, threshold int) error {
	pubs, err := readDelegationKeys(keyFiles, vendorKeyAccess(cmd))
	if err != nil {
		return err
	}
	if err := r.RotateDelegated(role, pubs, threshold); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if err := r.Commit(); errors.Is(err, publish.ErrMissingKeys) {
		fmt.Fprintf(w, "rotation of %s staged; the top-level targets needs more signatures: %v\n", role, err)
		return nil
	} else if err != nil {
		return err
	}
	if len(pubs) > 0 {
		fmt.Fprintf(w, "role %s now trusts key(s) %s: metadata signed with the old keys is refused from now on;\n"+
			"the vendor records the new key (vendor sign VDIR --key NEW) and sends a new version for import-role\n",
			role, strings.Join(ids(pubs), ", "))
	}
	return printStatus(w, r.Status())
}

func vendorInitCmd() *cobra.Command {
	var (
		keys, paths, hashes []string
		newKey, keyType     string
	)
	c := &cobra.Command{
		Use:   "init VDIR ROLE (--key KEY|pkcs11:… | --new-key FILE)",
		Short: "Create a vendor directory for ROLE, with the role's signing key",
		Long: "init creates VDIR for signing ROLE. --key names an existing key (an encrypted key\n" +
			"file, or a pkcs11: URI whose key never leaves the token; repeatable when the role\n" +
			"needs several signatures); --new-key FILE generates one, encrypted with a\n" +
			"passphrase asked on the terminal, or from --passphrase-fd, --passphrase-file\n" +
			"or $FIELDGATE_REPO_PASSPHRASE. The public key is written to\n" +
			"VDIR/ROLE.pub: hand it to the repository's operator, who delegates paths to the\n" +
			"role with delegate DIR ROLE --path … --key-file ROLE.pub.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vdir, role := args[0], args[1]
			ka := vendorKeyAccess(cmd)
			if newKey != "" {
				if _, err := publish.GenerateKeyFile(newKey, keyType, ka); err != nil {
					return err
				}
				keys = append(keys, newKey)
			}
			if len(keys) == 0 {
				return errors.New("give the role's key: --key KEY|pkcs11:… or --new-key FILE")
			}
			var pubs []*publish.Key
			for _, ref := range keys {
				k, err := signingPublicKey(ref, ka)
				if err != nil {
					return err
				}
				pubs = append(pubs, k)
			}
			v, err := publish.InitVendor(vdir, role, publish.VendorOptions{Keys: absRefs(keys), Public: pubs, Paths: paths, Hashes: hashes})
			if err != nil {
				return err
			}
			pubFile := filepath.Join(vdir, role+".pub")
			if err := writePublicKeys(pubFile, pubs); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "vendor directory %s for role %s, key(s) %s\n", v.Dir(), role, strings.Join(v.KeyIDs(), ", "))
			fmt.Fprintf(w, "send %s to the repository's operator, who runs\n  fieldgate-repo delegate DIR %s --path PATTERN --key-file %s.pub\n",
				pubFile, role, role)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&keys, "key", nil, "the role's signing key: key file or pkcs11: URI (repeatable)")
	f.StringVar(&newKey, "new-key", "", "generate the role's key in this file (and FILE.pub)")
	f.StringVar(&keyType, "key-type", publish.KeyEd25519, "type of --new-key: ed25519 or ecdsa-p256")
	f.StringArrayVar(&paths, "path", nil, "path pattern the operator delegates (repeatable); add refuses other names")
	f.StringSliceVar(&hashes, "hash", []string{"sha256"}, "hash algorithms listed for targets: sha256, sha512")
	addKeyAccessFlags(c)
	return c
}

// signingPublicKey returns the public key of a signing key reference,
// opening the key only when no public key is found beside a key file.
func signingPublicKey(ref string, ka publish.KeyAccess) (*publish.Key, error) {
	if !publish.IsPKCS11(ref) {
		if k, err := publish.PublicKey(publish.PublicKeyPath(ref), publish.KeyAccess{}); err == nil {
			return k, nil
		}
	}
	return publish.PublicKey(ref, ka)
}

// absRefs makes key file paths absolute, so that they are found from any
// working directory later; pkcs11: URIs are kept.
func absRefs(refs []string) []string {
	out := slices.Clone(refs)
	for i, ref := range out {
		if !publish.IsPKCS11(ref) {
			if abs, err := filepath.Abs(ref); err == nil {
				out[i] = abs
			}
		}
	}
	return out
}

// writePublicKeys writes the first key as a PEM public key file, and the
// others, if any, beside it as FILE.2, FILE.3 …
func writePublicKeys(path string, keys []*publish.Key) error {
	for i, k := range keys {
		pub, err := k.ToPublicKey()
		if err != nil {
			return err
		}
		p := path
		if i > 0 {
			p = fmt.Sprintf("%s.%d", path, i+1)
		}
		if err := publish.WritePublicKeyFile(p, pub); err != nil {
			return err
		}
	}
	return nil
}

func vendorAddCmd() *cobra.Command {
	var (
		name, custom string
		meta         tuf.Meta
	)
	c := &cobra.Command{
		Use:   "add VDIR FILE --name NAME (--custom JSON | --hardware … --version …)",
		Short: "Stage FILE as a target of the vendor's role (vendor sign signs it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			raw := []byte(custom)
			if custom == "" {
				b, err := tuf.MarshalCustom(meta)
				if err != nil {
					return fmt.Errorf("add %s: %w", name, err)
				}
				raw = b
			} else if cmd.Flags().Changed("hardware") || cmd.Flags().Changed("version") {
				return errors.New("give --custom or the metadata flags, not both")
			}
			if !json.Valid(raw) {
				return errors.New("--custom: not JSON")
			}
			v, err := publish.OpenVendor(args[0], nil)
			if err != nil {
				return err
			}
			if err := v.Add(name, args[1], raw); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "staged %s in role %s (run vendor sign to sign it)\n", name, v.Role())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&name, "name", "", "target name (path in the repository), e.g. acme-io16/fw-2.5.0.bin")
	f.StringVar(&custom, "custom", "", `TUF custom field as JSON: {"fieldgate": {"hardware": [...], "version": "..."}}`)
	targetMetaFlags(f, &meta)
	return c
}

func vendorRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove VDIR NAME",
		Short: "Unstage a target of the vendor's role (vendor sign signs the removal)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := publish.OpenVendor(args[0], nil)
			if err != nil {
				return err
			}
			return v.Remove(args[1])
		},
	}
}

func vendorSignCmd() *cobra.Command {
	var (
		version int64
		expires string
		keys    []string
	)
	c := &cobra.Command{
		Use:   "sign VDIR [--version N] [--expires 90d] [--key KEY…]",
		Short: "Sign the vendor's role and write VDIR/out for the operator",
		Long: "sign signs the staged targets of VDIR's role as version N (default: one more than\n" +
			"the last signed; the operator refuses a version not greater than the published one)\n" +
			"valid for --expires (whole days, hours, or both: 90d, 12h, 1d12h; at most 365d), with\n" +
			"the role's key(s), and writes VDIR/out: ROLE.json and targets/NAME for every target.\n" +
			"Send VDIR/out to the repository's operator, who runs import-role DIR OUT and commit.\n\n" +
			"--key (repeatable) signs with these keys instead and records them as the role's keys:\n" +
			"after the operator rotated the role to a new key.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := publish.ParseBundleExpiry(expires)
			if err != nil {
				return fmt.Errorf("--expires %q: want a positive duration of at most 365d, such as 90d, 12h or 1d12h", expires)
			}
			v, err := publish.OpenVendor(args[0], nil)
			if err != nil {
				return err
			}
			ka := vendorKeyAccess(cmd)
			w := cmd.OutOrStdout()
			if len(keys) > 0 {
				var pubs []*publish.Key
				for _, ref := range keys {
					k, err := signingPublicKey(ref, ka)
					if err != nil {
						return err
					}
					pubs = append(pubs, k)
				}
				if before := v.KeyIDs(); !slices.Equal(before, ids(pubs)) {
					fmt.Fprintf(w, "role %s: signing key(s) now %s (were %s)\n", v.Role(), strings.Join(ids(pubs), ", "), strings.Join(before, ", "))
				}
				if err := v.SetKeys(absRefs(keys), pubs); err != nil {
					return err
				}
			}
			var signers []crypto.Signer
			for _, ref := range v.Keys() {
				s, closer, err := publish.OpenKey(ref, ka)
				if err != nil {
					return err
				}
				defer closer.Close()
				signers = append(signers, s)
			}
			rel, err := v.Sign(signers, publish.VendorSignOptions{Version: version, Expires: d})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "signed role %s version %d, expires %s, key(s) %s, %d target(s)\n",
				rel.Role, rel.Version, rel.Expires.Format(time.RFC3339), strings.Join(rel.KeyIDs, ", "), len(rel.Targets))
			for _, t := range rel.Targets {
				fmt.Fprintf(w, "  %s\n", t)
			}
			fmt.Fprintf(w, "send %s to the repository's operator: fieldgate-repo import-role DIR OUT, then commit\n", rel.Dir)
			return nil
		},
	}
	f := c.Flags()
	f.Int64Var(&version, "version", 0, "version of the role metadata; default one more than the last signed")
	f.StringVar(&expires, "expires", "90d", "validity, e.g. 90d, 12h, 1d12h (at most 365d)")
	f.StringArrayVar(&keys, "key", nil, "sign with this key (file or pkcs11: URI) and record it as the role's key (repeatable)")
	addKeyAccessFlags(c)
	return c
}

func vendorStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status VDIR",
		Short: "Show the vendor directory's role, keys, last version signed and targets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := publish.OpenVendor(args[0], nil)
			if err != nil {
				return err
			}
			return printVendor(cmd.OutOrStdout(), v)
		},
	}
}

func printVendor(w io.Writer, v *publish.Vendor) error {
	fmt.Fprintf(w, "role %s, last version signed %d\n", v.Role(), v.Version())
	for i, ref := range v.Keys() {
		fmt.Fprintf(w, "key %s: %s\n", v.KeyIDs()[i], publish.RedactKeyRef(ref))
	}
	fmt.Fprintf(w, "targets (%d):\n", len(v.Targets()))
	for _, t := range v.Targets() {
		fmt.Fprintf(w, "  %s\n", t)
	}
	return nil
}

func importRoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import-role DIR OUT",
		Short: "Take in a delegated role's metadata signed by its vendor (VDIR/out); commit publishes it",
		Long: "import-role reads OUT (what fieldgate-repo vendor sign wrote to VDIR/out: ROLE.json\n" +
			"and targets/) and verifies it against the staged delegation to ROLE: signatures\n" +
			"from the delegation's keys up to its threshold, every target within the delegated\n" +
			"paths and not another role's, a version greater than the published one, an expiry\n" +
			"between 1h and 366d away, and every target file present with the listed length and\n" +
			"hashes. Anything wrong is refused and nothing is staged. Then commit publishes the\n" +
			"vendor's metadata unchanged, with a new snapshot and timestamp.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := publish.OpenWith(args[0], publish.Options{Keys: vendorKeyAccess(cmd), Command: "import-role"})
			if err != nil {
				return err
			}
			imp, err := r.ImportRole(args[1])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "imported role %s version %d (expires %s), signed by %s, %d target(s)\n",
				imp.Role, imp.Version, imp.Expires.Format(time.RFC3339), strings.Join(imp.KeyIDs, ", "), len(imp.Targets))
			for _, t := range imp.Targets {
				fmt.Fprintf(w, "  %s\n", t)
			}
			fmt.Fprintln(w, "run commit to publish it")
			return nil
		},
	}
}
