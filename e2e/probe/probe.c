/* A probe that reports, from inside a container, what the container lets it do. Built by the
 * end-to-end tests with `gcc -static`, packed into a test image, run as a GameServer's startup
 * and install script. Prints one `key=value` line per check; never aborts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *result(long rc) {
  static char buf[64];
  if (rc >= 0) return "ok";
  snprintf(buf, sizeof buf, "%s", strerrorname_np(errno) ? strerrorname_np(errno) : "error");
  return buf;
}

static void status_lines(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[512];
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    static const char *keys[] = {"Uid:", "Gid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:",
                                 "CapAmb:", "NoNewPrivs:", "Seccomp:", NULL};
    for (int i = 0; keys[i]; i++) {
      size_t n = strlen(keys[i]);
      if (strncmp(line, keys[i], n) == 0) {
        char *v = line + n;
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, "\n")] = 0;
        for (char *p = v; *p; p++) if (*p == '\t') *p = ' ';
        printf("%.*s=%s\n", (int)(n - 1), keys[i], v);
      }
    }
  }
  fclose(f);
}

static void read_file(const char *key, const char *path) {
  char buf[256];
  int fd = open(path, O_RDONLY);
  if (fd < 0) { printf("%s=%s\n", key, result(-1)); return; }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n < 0) { printf("%s=%s\n", key, result(-1)); close(fd); return; }
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  printf("%s=%zd:%s\n", key, n, buf);
  close(fd);
}

/* The first of the paths that can be read (cgroup v2, then v1): its first line. */
static void read_limit(const char *key, const char *v2, const char *v1) {
  char buf[128];
  const char *paths[] = {v2, v1};
  for (int i = 0; i < 2; i++) {
    int fd = open(paths[i], O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) continue;
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    printf("%s=%s\n", key, buf);
    return;
  }
  printf("%s=%s\n", key, "none");
}

static void try_write(const char *key, const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { printf("%s=%s\n", key, result(-1)); return; }
  long rc = write(fd, "x\n", 2);
  printf("%s=%s\n", key, result(rc));
  close(fd);
  unlink(path);
}

int main(int argc, char **argv) {
  const char *who = argc > 1 ? argv[1] : "probe";
  printf("probe=%s\n", who);
  status_lines();
  /* in a child, so that a success changes nothing here */
  pid_t pid = fork();
  if (pid == 0) _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
  int st = 0;
  waitpid(pid, &st, 0);
  printf("unshare_user=%s\n", WEXITSTATUS(st) == 0 ? "ok" : strerrorname_np(WEXITSTATUS(st)));
  printf("keyctl=%s\n", result(syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, "probe")));
  printf("mknod=%s\n", result(mknod("/tmp/probe-null", S_IFCHR | 0666, makedev(1, 3))));
  unlink("/tmp/probe-null");
  {
    /* a directory of the probe's own, so that a success covers nothing */
    char dir[] = "/tmp/probe-mnt-XXXXXX";
    if (mkdtemp(dir)) {
      long rc = mount("none", dir, "tmpfs", 0, NULL);
      printf("mount=%s\n", result(rc));
      if (rc == 0) umount(dir);
      rmdir(dir);
    }
  }
  read_file("kcore", "/proc/kcore");
  read_file("keys", "/proc/keys");
  {
    int fd = open("/proc/sysrq-trigger", O_WRONLY);
    printf("sysrq_trigger=%s\n", result(fd));
    if (fd >= 0) close(fd);
  }
  read_limit("memory_max", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes");
  read_limit("pids_max", "/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max");
  read_limit("cpu_max", "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  try_write("write_tmp", "/tmp/probe-write");
  try_write("write_home", "/home/container/.probe-write");
  try_write("write_etc", "/etc/probe-write");
  {
    struct stat s;
    if (stat("/tmp", &s) == 0) printf("tmp_mode=%o\n", s.st_mode & 07777);
  }
  printf("probe_done=%s\n", who);
  fflush(stdout);
  return 0;
}
