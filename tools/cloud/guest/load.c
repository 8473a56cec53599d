/*
 * secmig-load: the load and heartbeat program of the secmig test guest.
 *
 *   secmig-load tick            heartbeat on stdout, one line a second,
 *                               forever: "secmig-guest: tick N uptime=S"
 *   secmig-load burn N          N threads spinning at 100% (nice 19)
 *   secmig-load dirty R W       write R MiB/s over a W MiB working set
 *
 * Every line goes to stdout (the guest's console) in a single write(2),
 * prefixed "secmig-guest: ", so lines of concurrent processes do not mix.
 * Errors are one "secmig-guest: error ..." line and exit status 1 (2 for
 * a usage error); "tick" never returns.
 *
 * tick: N starts at 1 and grows by one per line; S is CLOCK_BOOTTIME
 * (the guest's /proc/uptime) in seconds with two decimals. Deadlines are
 * absolute on CLOCK_MONOTONIC; after a stall of more than a second (a
 * paused guest) the schedule restarts from now instead of bursting.
 *
 * burn: the spinning threads run at nice 19 so that the heartbeat and
 * the dirtying keep their pace on one vCPU; an otherwise idle vCPU is
 * still at 100%. Every 5 s: "secmig-guest: burn threads=N cpu=P%" (the
 * process' CPU time over wall time, all threads together).
 *
 * dirty: touches every 4 KiB page of the working set in turn, writing a
 * new non-zero 64-bit value into each, in batches every BATCH_NS and
 * sleeping in between. Credit accrues with elapsed time at R MiB/s and
 * is capped at two batches, so a vCPU too slow for R runs flat out at
 * what it can do without accumulating a debt to burst later. Every 5 s:
 * "secmig-guest: dirty rate=X MiB/s target=R wss=W" where X is the
 * achieved rate over those 5 s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "secmig-guest: "
#define PAGE 4096UL
#define PAGES_PER_MIB (1048576UL / PAGE)
#define NSEC 1000000000LL
#define BATCH_NS (20 * 1000000LL)
#define REPORT_NS (5 * NSEC)
#define MAX_BURN 256
#define MAX_RATE 1000000UL
/* Memory left to the kernel and the rest of the guest by "dirty". */
#define RESERVE_MIB 16UL

static void say(const char *fmt, ...)
{
	char line[256];
	int len = snprintf(line, sizeof(line), PREFIX);
	va_list ap;

	va_start(ap, fmt);
	len += vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* The console may be gone or full: a lost line is not an error. */
	if (write(STDOUT_FILENO, line, len) < 0)
		return;
}

static long long now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * NSEC + ts.tv_nsec;
}

static void sleep_until(long long deadline)
{
	struct timespec ts = {deadline / NSEC, deadline % NSEC};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
	       == EINTR)
		;
}

/* A decimal number in [min, max], or -1. */
static long parse_count(const char *text, long min, long max)
{
	char *end;
	long value;

	if (!text || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || *end || value < min || value > max)
		return -1;
	return value;
}

static void __attribute__((noreturn)) tick(void)
{
	unsigned long long n = 0;
	long long deadline = now_ns(CLOCK_MONOTONIC);

	/* As PID 1 this reaps the load processes should they exit. */
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		long long up = now_ns(CLOCK_BOOTTIME) / (NSEC / 100);
		long long now;

		say("tick %llu uptime=%lld.%02lld", ++n, up / 100, up % 100);
		deadline += NSEC;
		now = now_ns(CLOCK_MONOTONIC);
		if (now > deadline + NSEC)
			deadline = now;
		sleep_until(deadline);
	}
}

static void *spin(void *unused)
{
	volatile unsigned long counter = 0;

	(void)unused;
	setpriority(PRIO_PROCESS, syscall(SYS_gettid), 19);
	for (;;)
		counter++;
	return NULL;
}

static long long cpu_ns(void)
{
	return now_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static int burn(long threads)
{
	long long wall, cpu;
	pthread_t thread;
	long i;

	for (i = 0; i < threads; i++) {
		int rc = pthread_create(&thread, NULL, spin, NULL);

		if (rc) {
			say("error burn: thread %ld of %ld: %s", i + 1, threads,
			    strerror(rc));
			return 1;
		}
	}
	wall = now_ns(CLOCK_MONOTONIC);
	cpu = cpu_ns();
	for (;;) {
		long long wall2, cpu2;

		sleep_until(wall + REPORT_NS);
		wall2 = now_ns(CLOCK_MONOTONIC);
		cpu2 = cpu_ns();
		say("burn threads=%ld cpu=%lld%%", threads,
		    (cpu2 - cpu) * 100 / (wall2 - wall));
		wall = wall2;
		cpu = cpu2;
	}
}

/* MemAvailable of /proc/meminfo in MiB, or -1. */
static long available_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char key[64];
	unsigned long kib;
	long result = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lu kB\n", key, &kib) == 2) {
		if (!strcmp(key, "MemAvailable:")) {
			result = kib / 1024;
			break;
		}
	}
	fclose(f);
	return result;
}

static int dirty(long rate, long wss)
{
	unsigned long pages = wss * PAGES_PER_MIB;
	double per_ns = (double)rate * PAGES_PER_MIB / NSEC;
	double cap = 2 * per_ns * BATCH_NS, credit = 0;
	unsigned long next = 0, window = 0;
	uint64_t value = 0;
	long long last, deadline, report;
	long avail = available_mib();
	char *base;

	if (avail < 0) {
		say("error dirty: cannot read MemAvailable in /proc/meminfo");
		return 1;
	}
	if ((unsigned long)wss + RESERVE_MIB > (unsigned long)avail) {
		say("error dirty: secmig.wss=%ld MiB does not fit: %ld MiB "
		    "available, %lu MiB kept for the guest", wss, avail,
		    RESERVE_MIB);
		return 1;
	}
	base = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		say("error dirty: mmap of %ld MiB: %s", wss, strerror(errno));
		return 1;
	}
	last = report = deadline = now_ns(CLOCK_MONOTONIC);
	for (;;) {
		long long now = now_ns(CLOCK_MONOTONIC);
		unsigned long batch;

		credit += (now - last) * per_ns;
		if (credit > cap)
			credit = cap;
		last = now;
		batch = (unsigned long)credit;
		credit -= batch;
		window += batch;
		while (batch--) {
			*(volatile uint64_t *)(base + next * PAGE) = ++value;
			if (++next == pages)
				next = 0;
		}
		now = now_ns(CLOCK_MONOTONIC);
		if (now - report >= REPORT_NS) {
			double mib = (double)window / PAGES_PER_MIB;
			double secs = (double)(now - report) / NSEC;

			say("dirty rate=%.1f MiB/s target=%ld wss=%ld",
			    mib / secs, rate, wss);
			report = now;
			window = 0;
		}
		deadline += BATCH_NS;
		if (deadline < now)
			deadline = now;
		sleep_until(deadline);
	}
}

static int usage(void)
{
	say("error usage: secmig-load tick | burn N | dirty RATE_MIB_S "
	    "WSS_MIB");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "tick"))
		tick();
	if (argc == 3 && !strcmp(argv[1], "burn")) {
		long threads = parse_count(argv[2], 1, MAX_BURN);

		if (threads < 0) {
			say("error burn: thread count '%s' is not in 1..%d",
			    argv[2], MAX_BURN);
			return 2;
		}
		return burn(threads);
	}
	if (argc == 4 && !strcmp(argv[1], "dirty")) {
		long rate = parse_count(argv[2], 1, MAX_RATE);
		long wss = parse_count(argv[3], 1, LONG_MAX / (long)PAGE
				       / (long)PAGES_PER_MIB);

		if (rate < 0 || wss < 0) {
			say("error dirty: rate '%s' must be in 1..%lu MiB/s and "
			    "working set '%s' a positive MiB count", argv[2],
			    MAX_RATE, argv[3]);
			return 2;
		}
		return dirty(rate, wss);
	}
	return usage();
}
