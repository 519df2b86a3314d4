// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11"
)

// pkcs11Status says whether this fieldgate-repo signs with PKCS#11 tokens.
func pkcs11Status() string {
	if pkcs11.Compiled {
		return "PKCS#11 (--key pkcs11:…) is compiled in"
	}
	return "PKCS#11 is not compiled in: this fieldgate-repo was built without cgo"
}

// wirePKCS11 lets every --key of root take a pkcs11: URI in a build with
// cgo (publish.OpenPKCS11), adds the hsm command, and makes --version and
// --help say whether PKCS#11 is compiled in. Only the output of a running
// binary says so: the man page is the same for both builds.
func wirePKCS11(root *cobra.Command) {
	publish.OpenPKCS11 = pkcs11Opener()
	root.Version = version + " (" + pkcs11Status() + ")"
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		help(c, args)
		if c == root || c.Name() == "hsm" || (c.HasParent() && c.Parent().Name() == "hsm") {
			fmt.Fprintf(c.OutOrStdout(), "\n%s.\n", pkcs11Status())
		}
	})
	root.AddCommand(hsmCmd())
}

func hsmCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "hsm",
		Short: "Keys in a PKCS#11 token (HSM, smart card, SoftHSM): generate one, show its public key",
		Long: "A key in a PKCS#11 token signs for any role where a command takes --key: give an\n" +
			"RFC 7512 URI instead of a key file, e.g.\n\n" +
			"  'pkcs11:token=fieldgate;object=targets-1?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin'\n\n" +
			"The module (a shared library) comes from module-path, else $FIELDGATE_PKCS11_MODULE; the\n" +
			"PIN from pin-source (a file's first line), else $FIELDGATE_PKCS11_PIN, else pin-value\n" +
			"(which other users of the host can read in the process list). Keys are ECDSA P-256\n" +
			"(ecdsa-sha2-nistp256) or Ed25519.\n\n" +
			"PKCS#11 needs a fieldgate-repo built with cgo (the amd64 and arm64 packages are; the\n" +
			"armhf one is not): fieldgate-repo --version says which this is.",
	}
	c.AddCommand(hsmKeygenCmd(), hsmPubkeyCmd())
	return c
}

func hsmKeygenCmd() *cobra.Command {
	var key, keyType, pubOut string
	c := &cobra.Command{
		Use:   "keygen --key 'pkcs11:token=…;object=LABEL' [--key-type ecdsa-p256|ed25519] [--public-key FILE]",
		Short: "Generate a key pair inside the token; the private key never leaves it",
		Long: "keygen generates a key pair in the token the URI names, labelled with its object=\n" +
			"and with its id= (random when the URI has none). The private key is sensitive and\n" +
			"not extractable: it signs in the token and cannot be read out of it. An object with\n" +
			"the same label or id is never replaced. keygen prints the key's full URI (use it as\n" +
			"--key), its TUF key id and public key, and writes the public key as PEM with\n" +
			"--public-key (for delegate --key-file or init on another host).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !pkcs11.IsURI(key) {
				return fmt.Errorf("--key %q: want a pkcs11: URI", key)
			}
			pub, ref, err := pkcs11.Generate(key, keyType)
			if err != nil {
				return err
			}
			if pubOut != "" {
				if err := publish.WritePublicKeyFile(pubOut, pub); err != nil {
					return err
				}
			}
			return printTokenKey(cmd, "generated "+keyType+" key in the token", ref, key, pubOut)
		},
	}
	c.Flags().StringVar(&key, "key", "", "pkcs11: URI of the new key: token=…;object=LABEL[;id=%…] and the module and PIN")
	c.Flags().StringVar(&keyType, "key-type", pkcs11.KeyECDSAP256, "key type: ecdsa-p256 or ed25519")
	c.Flags().StringVar(&pubOut, "public-key", "", "also write the public key to this file (PEM)")
	return c
}

func hsmPubkeyCmd() *cobra.Command {
	var key, pubOut string
	c := &cobra.Command{
		Use:   "pubkey --key 'pkcs11:…' [--public-key FILE]",
		Short: "Show the TUF key id and public key of a key in the token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !pkcs11.IsURI(key) {
				return fmt.Errorf("--key %q: want a pkcs11: URI", key)
			}
			u, err := pkcs11.ParseURI(key)
			if err != nil {
				return err
			}
			if pubOut != "" {
				s, c, err := publish.OpenKey(key, publish.KeyAccess{})
				if err != nil {
					return err
				}
				err = publish.WritePublicKeyFile(pubOut, s.Public())
				c.Close()
				if err != nil {
					return err
				}
			}
			return printTokenKey(cmd, "key in the token", u.String(), key, pubOut)
		},
	}
	c.Flags().StringVar(&key, "key", "", "pkcs11: URI of the key")
	c.Flags().StringVar(&pubOut, "public-key", "", "also write the public key to this file (PEM)")
	return c
}

// printTokenKey prints the key's URI ref (without a PIN), and its TUF key
// id and public key, read through the same resolver that signs, with the
// URI as given (key, which may hold the PIN).
func printTokenKey(cmd *cobra.Command, what, ref, key, pubOut string) error {
	k, err := publish.PublicKey(key, publish.KeyAccess{})
	if err != nil {
		return err
	}
	id, err := k.ID()
	if err != nil {
		return err
	}
	js, err := json.Marshal(k)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: %s\nkey id: %s\npublic key: %s\n", what, ref, id, js)
	if pubOut != "" {
		fmt.Fprintf(w, "public key written to %s\n", pubOut)
	}
	return nil
}
