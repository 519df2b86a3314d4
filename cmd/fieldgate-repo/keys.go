// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// passphraseEnv holds a passphrase for scripts that can pass neither a
// terminal nor a file descriptor: the least safe source (a process's
// environment is readable by its user's other processes, inherited by its
// children and easily logged).
const passphraseEnv = "FIELDGATE_REPO_PASSPHRASE"

// keyFlagsHelp explains key handling in the root command's help.
const keyFlagsHelp = "Every private key fieldgate-repo writes is encrypted PKCS #8 (scrypt, AES-256-CBC;\n" +
	"openssl pkey reads it) under a passphrase. The passphrase comes from --passphrase-fd N or\n" +
	"--passphrase-file FILE (the first line; a systemd credential), else $" + passphraseEnv + "\n" +
	"(least safe), else a prompt on the\n" +
	"terminal (twice for a new key; Enter reuses the one just typed). Unencrypted keys are\n" +
	"written and read only with --insecure-plaintext-keys; keys encrypt DIR encrypts those of\n" +
	"an existing repository."

// addKeyFlags adds the flags of every command that reads or writes keys:
// persistent flags of the root command.
func addKeyFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.Int("passphrase-fd", -1, "read the key passphrase from this open file descriptor (its first line), e.g. --passphrase-fd 3 3<FILE")
	f.String("passphrase-file", "", "read the key passphrase from this file (its first line), e.g. a systemd credential: %d/NAME")
	f.Bool("insecure-plaintext-keys", false, "write new private keys unencrypted and read unencrypted ones (throwaway and test repositories)")
}

// keyAccess returns how cmd reads and writes key files: from the flags of
// addKeyFlags, $FIELDGATE_REPO_PASSPHRASE, or the terminal on stdin.
func keyAccess(cmd *cobra.Command) publish.KeyAccess {
	p := &passphrases{fd: -1, prompt: cmd.ErrOrStderr()}
	if f := cmd.Flag("passphrase-fd"); f != nil {
		fmt.Sscan(f.Value.String(), &p.fd)
	}
	if f := cmd.Flag("passphrase-file"); f != nil {
		p.file = f.Value.String()
	}
	if v, ok := os.LookupEnv(passphraseEnv); ok {
		p.env, p.haveEnv = []byte(v), true
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		p.tty = os.Stdin
	}
	ka := publish.KeyAccess{Passphrase: p.get}
	if f := cmd.Flag("insecure-plaintext-keys"); f != nil && f.Value.String() == "true" {
		ka.InsecurePlaintextKeys = true
	}
	return ka
}

// passphrases answers publish.KeyAccess.Passphrase from the first source
// given: a file descriptor, the environment, a terminal.
type passphrases struct {
	fd      int
	file    string
	fromFD  []byte // from fd or file
	readFD  bool
	env     []byte
	haveEnv bool
	tty     *os.File
	prompt  io.Writer
	last    []byte // typed at the prompt, offered again with Enter
}

func (p *passphrases) get(key string, confirm bool) ([]byte, error) {
	switch {
	case p.fd >= 0:
		if !p.readFD {
			f := os.NewFile(uintptr(p.fd), "passphrase-fd")
			if f == nil {
				return nil, fmt.Errorf("--passphrase-fd %d: not an open file descriptor", p.fd)
			}
			line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadBytes('\n')
			f.Close()
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("--passphrase-fd %d: %w", p.fd, err)
			}
			p.fromFD, p.readFD = bytes.TrimRight(line, "\r\n"), true
		}
		return p.fromFD, nil
	case p.file != "":
		if !p.readFD {
			f, err := os.Open(p.file)
			if err != nil {
				return nil, fmt.Errorf("--passphrase-file: %w", err)
			}
			line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadBytes('\n')
			f.Close()
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("--passphrase-file %s: %w", p.file, err)
			}
			p.fromFD, p.readFD = bytes.TrimRight(line, "\r\n"), true
		}
		return p.fromFD, nil
	case p.haveEnv:
		return p.env, nil
	case p.tty != nil:
		return p.ask(key, confirm)
	}
	return nil, fmt.Errorf("no passphrase for %s: run fieldgate-repo on a terminal, or give --passphrase-fd N, --passphrase-file FILE or $%s", key, passphraseEnv)
}

func (p *passphrases) ask(key string, confirm bool) ([]byte, error) {
	again := ""
	if p.last != nil {
		again = " (Enter: the one just typed)"
	}
	what := "Passphrase for "
	if confirm {
		what = "New passphrase for "
	}
	fmt.Fprintf(p.prompt, "%s%s%s: ", what, key, again)
	pass, err := term.ReadPassword(int(p.tty.Fd()))
	fmt.Fprintln(p.prompt)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(pass) == 0 && p.last != nil {
		return p.last, nil
	}
	if confirm {
		fmt.Fprint(p.prompt, "Again: ")
		second, err := term.ReadPassword(int(p.tty.Fd()))
		fmt.Fprintln(p.prompt)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if !bytes.Equal(pass, second) {
			return nil, errors.New("the passphrases differ")
		}
	}
	p.last = pass
	return pass, nil
}

// openKeys opens every --key REF for one command; the caller closes them.
func openKeys(refs []string, ka publish.KeyAccess) ([]crypto.Signer, func(), error) {
	var (
		signers []crypto.Signer
		closers []io.Closer
	)
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for _, ref := range refs {
		s, c, err := publish.OpenKey(ref, ka)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		signers = append(signers, s)
		closers = append(closers, c)
	}
	return signers, closeAll, nil
}

// openRepo opens the repository DIR for command name with the key access
// of cmd's flags and the keys given with --key (refs).
func openRepo(cmd *cobra.Command, dir, name string, refs []string) (*publish.Repo, func(), error) {
	ka := keyAccess(cmd)
	signers, closeKeys, err := openKeys(refs, ka)
	if err != nil {
		return nil, nil, err
	}
	keepRetired := false
	if f := cmd.Flag("keep-retired"); f != nil {
		keepRetired = f.Value.String() == "true"
	}
	r, err := publish.OpenWith(dir, publish.Options{Keys: ka, Signers: signers, Command: name, KeepRetired: keepRetired})
	if err != nil {
		closeKeys()
		return nil, nil, err
	}
	return r, closeKeys, nil
}

// addKeyRefFlag adds --key REF (repeatable) to a command that signs.
func addKeyRefFlag(c *cobra.Command, refs *[]string, what string) {
	c.Flags().StringArrayVar(refs, "key", nil, what+": a private key file or a pkcs11: URI (repeatable)")
}

func keygenCmd() *cobra.Command {
	var out, keyType string
	c := &cobra.Command{
		Use:   "keygen --out FILE.pem [--key-type ed25519|ecdsa-p256]",
		Short: "Generate one private key for its holder (encrypted), and its public key FILE.pub",
		Long: "keygen writes a new private key to FILE.pem (encrypted under a passphrase, mode 0600)\n" +
			"and its public key to FILE.pub, for a key that one person holds on their own machine or\n" +
			"medium: a root key when root keys are split among people. Only FILE.pub is handed over:\n" +
			"init DIR --root-pubkey FILE.pub (or rotate DIR root --pubkey FILE.pub) lists it, and\n" +
			"the holder signs with sign DIR root --key FILE.pem where the key is.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			k, err := publish.GenerateKeyFile(out, keyType, keyAccess(cmd))
			if err != nil {
				return err
			}
			id, err := k.ID()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key: %s (keep it here)\npublic key:  %s (hand this over)\nkey id:      %s\n",
				out, publish.PublicKeyPath(out), id)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "private key file to create (FILE.pem; the public key goes to FILE.pub)")
	c.Flags().StringVar(&keyType, "key-type", publish.KeyEd25519, "key type: ed25519 or ecdsa-p256")
	return c
}

func keysCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "keys",
		Short: "Key files of a repository: encrypt plaintext ones, change a role's passphrase",
	}
	c.AddCommand(keysPasswdCmd())
	c.AddCommand(&cobra.Command{
		Use:   "encrypt DIR",
		Short: "Encrypt every plaintext private key file of the repository DIR in place",
		Long: "encrypt reads every unencrypted private key file of DIR (DIR/keys, the root keys\n" +
			"directory and delegated roles' key directories) and writes it back encrypted under a\n" +
			"passphrase, with its public key beside it (KEYID.pub). The plaintext is replaced by a\n" +
			"rename, which leaves its old blocks on the disk until they are reused: on flash and\n" +
			"copy-on-write file systems overwriting would not erase them either. Keep signing hosts\n" +
			"on encrypted disks, and rotate keys that ever sat in plaintext on a shared one.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ka := keyAccess(cmd)
			ka.InsecurePlaintextKeys = false
			done, err := publish.EncryptKeys(args[0], ka)
			w := cmd.OutOrStdout()
			for _, f := range done {
				fmt.Fprintf(w, "encrypted %s\n", f)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%d key file(s) encrypted\n", len(done))
			return nil
		},
	})
	return c
}

func signCmd() *cobra.Command {
	var refs, from []string
	c := &cobra.Command{
		Use:   "sign DIR ROLE (--key KEY | --from COPY/staged/signing/ROLE.json)…",
		Short: "Add a signature to the staged next version of ROLE (root, targets or a delegated role)",
		Long: "sign adds one signature per --key to the next version of ROLE staged in\n" +
			"DIR/staged/signing/ROLE.json, staging it first if needed (for root: the next version\n" +
			"with a fresh expiry; for targets and delegated roles: the staged changes), and prints\n" +
			"how many valid signatures it has against each threshold it must meet. commit publishes\n" +
			"it once they are met. Each key holder runs sign where their key is (on a copy of DIR, or\n" +
			"DIR on shared or removable storage): a private key never has to move. A root version N+1\n" +
			"needs a threshold of root N's keys and one of its own.\n\n" +
			"Holders who each sign their own copy of DIR send back COPY/staged/signing/ROLE.json;\n" +
			"--from FILE adds its signatures here after checking that it signs exactly the version\n" +
			"staged here and that each signature verifies with a key of the role.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(refs)+len(from) == 0 {
				return errors.New("--key or --from is required")
			}
			name := "sign"
			if len(from) > 0 {
				name = "sign --from"
			}
			r, closeKeys, err := openRepo(cmd, args[0], name, nil)
			if err != nil {
				return err
			}
			defer closeKeys()
			var st publish.StagedRole
			for _, f := range from {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				var added []string
				if st, added, err = r.MergeStaged(args[1], data); err != nil {
					return fmt.Errorf("--from %s: %w", f, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added %d signature(s) from %s\n", len(added), f)
			}
			if len(refs) > 0 {
				signers, closeSigners, err := openKeys(refs, keyAccess(cmd))
				if err != nil {
					return err
				}
				defer closeSigners()
				if st, err = r.SignStaged(args[1], signers...); err != nil {
					return err
				}
			}
			printStaged(cmd.OutOrStdout(), []publish.StagedRole{st})
			return nil
		},
	}
	addKeyRefFlag(c, &refs, "key to sign with")
	c.Flags().StringArrayVar(&from, "from", nil, "a copy of the staged ROLE.json signed on another host: add its signatures (repeatable)")
	return c
}

// printStaged prints the staged role versions and their signature counts.
func printStaged(w io.Writer, staged []publish.StagedRole) {
	for _, s := range staged {
		state := "waiting for signatures"
		if s.Ready() {
			state = "ready: commit publishes it"
		}
		fmt.Fprintf(w, "staged: %s version %d (expires %s), %s\n", s.Role, s.Version, s.Expires.Format(time.RFC3339), state)
		for _, c := range s.Counts {
			fmt.Fprintf(w, "  %d of %d valid signatures by the keys of %s\n", len(c.Valid), c.Threshold, c.Against)
			for _, id := range c.Valid {
				fmt.Fprintf(w, "    signed:  %s\n", id)
			}
			for _, id := range c.Missing {
				fmt.Fprintf(w, "    missing: %s\n", id)
			}
		}
	}
}

func logCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "log DIR",
		Short: "List every signing event of the repository (DIR/signing-log.jsonl)",
		Long: "log lists the signing events recorded in DIR/signing-log.jsonl, oldest first: when,\n" +
			"which command, which role and version, and the ids of the keys that signed (\"staged\"\n" +
			"marks signatures gathered with sign or a root rotation, not yet published). Every\n" +
			"command that signs appends to it and fsyncs it before it returns. A last line cut\n" +
			"short by a crash is reported and skipped.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := publish.ReadSigningLog(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tCOMMAND\tROLE\tVERSION\tKEY IDS")
			for _, ev := range l.Events {
				v := fmt.Sprint(ev.Version)
				if !ev.Published {
					v += " (staged)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.Format(time.RFC3339), ev.Command, ev.Role, v, strings.Join(ev.KeyIDs, ","))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, d := range l.Damaged {
				why := "unreadable"
				if d.Truncated {
					why = "cut short (a write interrupted by a crash)"
				}
				fmt.Fprintf(w, "warning: %s line %d %s, skipped: %q\n", publish.SigningLogFile, d.Line, why, d.Text)
			}
			return nil
		},
	}
}

func keysPasswdCmd() *cobra.Command {
	var newFD int
	var newFile string
	c := &cobra.Command{
		Use:   "passwd DIR ROLE [--new-passphrase-file FILE | --new-passphrase-fd N]",
		Short: "Encrypt the key files of ROLE with a new passphrase",
		Long: "passwd re-encrypts the private key files of ROLE in DIR (read with the current\n" +
			"passphrase, from the usual sources) with a new passphrase from --new-passphrase-file,\n" +
			"--new-passphrase-fd or the terminal (asked twice). Give the online timestamp key a\n" +
			"passphrase of its own this way: the timer's service is given that one (a systemd\n" +
			"credential) and can unlock no other key.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from := keyAccess(cmd)
			p := &passphrases{fd: newFD, file: newFile, prompt: cmd.ErrOrStderr()}
			if newFD < 0 && newFile == "" {
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return errors.New("the new passphrase: give --new-passphrase-file or --new-passphrase-fd, or run on a terminal")
				}
				p.tty = os.Stdin
			}
			done, err := publish.ChangePassphrase(args[0], args[1], from, publish.KeyAccess{Passphrase: p.get})
			w := cmd.OutOrStdout()
			for _, f := range done {
				fmt.Fprintf(w, "new passphrase: %s\n", f)
			}
			return err
		},
	}
	c.Flags().IntVar(&newFD, "new-passphrase-fd", -1, "read the new passphrase from this open file descriptor (its first line)")
	c.Flags().StringVar(&newFile, "new-passphrase-file", "", "read the new passphrase from this file (its first line)")
	return c
}
