// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"os"
	"strconv"
	"syscall"
)

func owner(fi os.FileInfo) (uid, gid string) {
	st := fi.Sys().(*syscall.Stat_t)
	return strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
}
