package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type component struct {
	name string
	pid  int
}

// recorded reads DIR/pids, in start order.
func recorded(dir string) []component {
	file, err := os.Open(filepath.Join(dir, "pids"))
	if err != nil {
		return nil
	}
	defer file.Close()
	var out []component
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 2 {
			continue
		}
		if pid, err := strconv.Atoi(fields[1]); err == nil && pid > 1 {
			out = append(out, component{fields[0], pid})
		}
	}
	return out
}

func pidOf(dir, name string) (int, bool) {
	pid, found := 0, false
	for _, c := range recorded(dir) {
		if c.name == name {
			pid, found = c.pid, true
		}
	}
	return pid, found
}

// running says whether pid is a live process (not a zombie).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	text := string(stat)
	if i := strings.LastIndexByte(text, ')'); i >= 0 && i+2 < len(text) {
		return text[i+2] != 'Z'
	}
	return true
}

func alive(dir string) []string {
	var names []string
	for _, c := range recorded(dir) {
		if running(c.pid) {
			names = append(names, c.name)
		}
	}
	return names
}

// stop ends the last recorded process of that name: SIGTERM, then SIGKILL after 10 s.
func stop(dir, name string) {
	if pid, found := pidOf(dir, name); found {
		terminate(pid)
	}
}

func terminate(pid int) {
	if !running(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for running(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if running(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// down stops what `up` started in DIR, newest first, and forgets it.
func down(dir string) error {
	components := recorded(dir)
	for i := len(components) - 1; i >= 0; i-- {
		terminate(components[i].pid)
	}
	for _, c := range components {
		if running(c.pid) {
			return fmt.Errorf("%s (pid %d) is still running", c.name, c.pid)
		}
	}
	_ = os.Remove(filepath.Join(dir, "pids"))
	_ = os.RemoveAll(filepath.Join(dir, "etcd"))
	if len(components) > 0 {
		say("stopped %d processes", len(components))
	}
	return nil
}
