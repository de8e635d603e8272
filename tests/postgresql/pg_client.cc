// hakit-pg-client: commits numbered transactions through libpq and says so.
//
//   hakit-pg-client CONNINFO FIRST [--timeout-ms N] [--count N] [--time]
//
// Inserts FIRST, FIRST+1, ... into table t(i int primary key), one
// autocommitted INSERT each, and prints a number on stdout (flushed) only
// once the server acknowledged its commit: the ledger of the no-loss tests.
// With --time, prints "<number> <CLOCK_REALTIME ns>" instead. A number whose
// commit failed or went unanswered is skipped, never retried (its outcome is
// unknown). Connecting and each statement are bounded by --timeout-ms
// (default 500), below libpq's own 2 s minimum, so that a client of a VIP
// moving to another node notices within that bound. Errors go to stderr.
// Exits after --count acknowledged commits (default: never).
#include <libpq-fe.h>
#include <poll.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

// Waits until the socket is ready in `events` or the deadline passes.
bool WaitSocket(PGconn* c, short events, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return false;
  pollfd p{PQsocket(c), events, 0};
  return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
}

PGconn* Connect(const char* conninfo, std::chrono::milliseconds timeout) {
  PGconn* c = PQconnectStart(conninfo);
  if (c == nullptr) return nullptr;
  auto deadline = Clock::now() + timeout;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (!WaitSocket(c, ev, deadline)) {
      std::fprintf(stderr, "connect: no answer within %lld ms\n",
                   static_cast<long long>(timeout.count()));
      PQfinish(c);
      return nullptr;
    }
    st = PQconnectPoll(c);
  }
  if (st == PGRES_POLLING_FAILED) {
    std::fprintf(stderr, "connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return nullptr;
  }
  return c;
}

// Runs one statement; true when the server acknowledged it.
bool Exec(PGconn* c, const std::string& sql, std::chrono::milliseconds timeout) {
  if (!PQsendQuery(c, sql.c_str())) {
    std::fprintf(stderr, "send: %s", PQerrorMessage(c));
    return false;
  }
  auto deadline = Clock::now() + timeout;
  bool ok = true;
  bool got_result = false;
  while (true) {
    while (PQisBusy(c)) {
      if (!WaitSocket(c, POLLIN, deadline)) {
        std::fprintf(stderr, "statement: no answer within %lld ms\n",
                     static_cast<long long>(timeout.count()));
        return false;
      }
      if (!PQconsumeInput(c)) {
        std::fprintf(stderr, "read: %s", PQerrorMessage(c));
        return false;
      }
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) break;
    got_result = true;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      std::fprintf(stderr, "statement: %s", PQresultErrorMessage(r));
      ok = false;
    }
    PQclear(r);
  }
  return ok && got_result;
}

long long RealtimeNs() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: hakit-pg-client CONNINFO FIRST [--timeout-ms N] [--count N] [--time]\n");
    return 2;
  }
  const char* conninfo = argv[1];
  long long next = std::atoll(argv[2]);
  std::chrono::milliseconds timeout(500);
  long long count = -1;
  bool with_time = false;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--timeout-ms" && i + 1 < argc) {
      timeout = std::chrono::milliseconds(std::atoll(argv[++i]));
    } else if (a == "--count" && i + 1 < argc) {
      count = std::atoll(argv[++i]);
    } else if (a == "--time") {
      with_time = true;
    } else {
      std::fprintf(stderr, "hakit-pg-client: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  PGconn* c = nullptr;
  long long acked = 0;
  while (count < 0 || acked < count) {
    if (c == nullptr) {
      c = Connect(conninfo, timeout);
      if (c == nullptr) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
    }
    long long i = next++;
    if (Exec(c, "INSERT INTO t VALUES (" + std::to_string(i) + ")", timeout)) {
      if (with_time) {
        std::printf("%lld %lld\n", i, RealtimeNs());
      } else {
        std::printf("%lld\n", i);
      }
      std::fflush(stdout);
      ++acked;
    } else {
      // Whatever state the session is in, start afresh.
      PQfinish(c);
      c = nullptr;
    }
  }
  if (c != nullptr) PQfinish(c);
  return 0;
}
