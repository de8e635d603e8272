// RunProcess against real shell scripts: exit codes, output capture, the
// environment, timeouts that kill the whole process group, start failures and
// concurrent use. Suite names start with "scripts_" so that
// `ctest -R scripts` selects them.
#include "hakit/scripts/run_process.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "script_test_util.h"

namespace hakit::scripts {
namespace {

using namespace std::chrono_literals;
using sdk::Command;
using sdk::CommandResult;
using Outcome = sdk::CommandResult::Outcome;
using testing_util::IsAlive;
using testing_util::MillisSince;
using testing_util::ReadPid;
using testing_util::TempDir;
using testing_util::WaitGone;
using testing_util::WriteScript;

struct Captured {
  std::vector<std::string> out;
  std::vector<std::string> err;
  OutputSink Sink() {
    return [this](OutputStream stream, std::string_view line) {
      (stream == OutputStream::kStdout ? out : err).emplace_back(line);
    };
  }
};

const std::map<std::string, std::string> kBaseEnv = {{"PATH", "/usr/bin:/bin"}};

Command Shell(const std::string& script, std::chrono::milliseconds timeout = 0ms) {
  Command command;
  command.argv = {"/bin/sh", "-c", script};
  command.timeout = timeout;
  return command;
}

TEST(scripts_RunProcess, ExitCodeZero) {
  CommandResult result = RunProcess(Shell("exit 0"), kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kExited);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_TRUE(result.ok());
  EXPECT_TRUE(result.error.empty()) << result.error;
}

TEST(scripts_RunProcess, NonZeroExitCode) {
  CommandResult result = RunProcess(Shell("exit 3"), kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kExited);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.error, "exited with code 3");
}

TEST(scripts_RunProcess, KilledBySignal) {
  CommandResult result = RunProcess(Shell("kill -KILL $$"), kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kSignaled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_NE(result.error.find("SIGKILL"), std::string::npos) << result.error;
}

TEST(scripts_RunProcess, CapturesStdoutAndStderrLines) {
  Captured captured;
  CommandResult result =
      RunProcess(Shell("printf 'first\\nsecond\\n'; echo oops >&2; echo '' ; printf 'no newline'"),
                 kBaseEnv, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(captured.out, (std::vector<std::string>{"first", "second", "", "no newline"}));
  EXPECT_EQ(captured.err, (std::vector<std::string>{"oops"}));
}

TEST(scripts_RunProcess, LargeOutputIsReadCompletely) {
  Captured captured;
  CommandResult result =
      RunProcess(Shell("seq 1 50000; seq 1 1000 >&2"), kBaseEnv, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  ASSERT_EQ(captured.out.size(), 50000u);
  EXPECT_EQ(captured.out.front(), "1");
  EXPECT_EQ(captured.out.back(), "50000");
  EXPECT_EQ(captured.err.size(), 1000u);
}

TEST(scripts_RunProcess, OverlongLineArrivesInPieces) {
  Captured captured;
  CommandResult result =
      RunProcess(Shell("head -c 150000 /dev/zero | tr '\\0' x"), kBaseEnv, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  std::size_t total = 0;
  for (const auto& piece : captured.out) {
    EXPECT_LE(piece.size(), kMaxLineBytes);
    total += piece.size();
  }
  EXPECT_EQ(total, 150000u);
  EXPECT_EQ(captured.out.front().size(), kMaxLineBytes);
}

TEST(scripts_RunProcess, EnvironmentIsExactlyBasePlusExtra) {
  ::setenv("HAKIT_TEST_LEAK", "must-not-appear", 1);
  Command command;
  command.argv = {"env"};  // not a shell: a shell would add PWD, SHLVL, ...
  command.extra_env = {{"B", "2"}, {"A", "overridden"}};
  Captured captured;
  CommandResult result =
      RunProcess(command, {{"A", "1"}, {"PATH", "/usr/bin:/bin"}, {"C", "x y"}}, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  std::set<std::string> got(captured.out.begin(), captured.out.end());
  EXPECT_EQ(got, (std::set<std::string>{"A=overridden", "B=2", "C=x y", "PATH=/usr/bin:/bin"}));
}

TEST(scripts_RunProcess, DaemonPathWhenNoneGiven) {
  const char* daemon_path = std::getenv("PATH");
  ASSERT_NE(daemon_path, nullptr);
  Command command;
  command.argv = {"/usr/bin/env"};
  Captured captured;
  CommandResult result = RunProcess(command, {{"ONLY", "me"}}, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  std::set<std::string> got(captured.out.begin(), captured.out.end());
  EXPECT_EQ(got, (std::set<std::string>{"ONLY=me", std::string("PATH=") + daemon_path}));
}

TEST(scripts_RunProcess, InvalidVariableNamesAreNotPassed) {
  Command command;
  command.argv = {"env"};
  Captured captured;
  CommandResult result = RunProcess(
      command, {{"PATH", "/usr/bin:/bin"}, {"BAD=NAME", "v"}, {"", "v"}}, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(captured.out, (std::vector<std::string>{"PATH=/usr/bin:/bin"}));
}

TEST(scripts_RunProcess, LooksUpProgramInTheChildsPath) {
  TempDir dir;
  WriteScript(dir.path() / "my-hakit-tool", "echo found; exit 4");
  Command command;
  command.argv = {"my-hakit-tool"};
  Captured captured;
  CommandResult result =
      RunProcess(command, {{"PATH", "relative:" + dir.path().string() + ":/bin"}}, captured.Sink());
  EXPECT_EQ(result.outcome, Outcome::kExited);
  EXPECT_EQ(result.exit_code, 4);
  EXPECT_EQ(captured.out, (std::vector<std::string>{"found"}));
}

TEST(scripts_RunProcess, MissingProgramFailsToStart) {
  Command command;
  command.argv = {"/nonexistent/hakit/prog", "arg"};
  CommandResult result = RunProcess(command, kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kFailedToStart);
  EXPECT_NE(result.error.find("/nonexistent/hakit/prog"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("No such file or directory"), std::string::npos) << result.error;
}

TEST(scripts_RunProcess, ProgramNotInPathFailsToStart) {
  Command command;
  command.argv = {"no-such-hakit-program"};
  CommandResult result = RunProcess(command, kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kFailedToStart);
  EXPECT_NE(result.error.find("no-such-hakit-program"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("not found in PATH"), std::string::npos) << result.error;
}

TEST(scripts_RunProcess, NonExecutableFileFailsToStart) {
  TempDir dir;
  auto script = dir.path() / "not_executable";
  WriteScript(script, "exit 0", 0644);
  Command command;
  command.argv = {script.string()};
  CommandResult result = RunProcess(command, kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kFailedToStart);
  EXPECT_NE(result.error.find(script.string()), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("Permission denied"), std::string::npos) << result.error;
}

TEST(scripts_RunProcess, DirectoryFailsToStart) {
  TempDir dir;
  Command command;
  command.argv = {dir.path().string()};
  CommandResult result = RunProcess(command, kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kFailedToStart);
  EXPECT_NE(result.error.find("Is a directory"), std::string::npos) << result.error;
}

TEST(scripts_RunProcess, EmptyArgvFailsToStart) {
  CommandResult result = RunProcess(Command{}, kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kFailedToStart);
  EXPECT_FALSE(result.error.empty());
}

TEST(scripts_RunProcess, RunsInWorkingDir) {
  TempDir dir;
  WriteScript(dir.path() / "here", "pwd");
  Command command;
  command.argv = {"./here"};  // relative to the working dir
  command.working_dir = dir.path().string();
  Captured captured;
  CommandResult result = RunProcess(command, kBaseEnv, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(captured.out, (std::vector<std::string>{dir.path().string()}));
}

TEST(scripts_RunProcess, MissingWorkingDirFailsToStart) {
  Command command = Shell("exit 0");
  command.working_dir = "/nonexistent/hakit/wd";
  CommandResult result = RunProcess(command, kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kFailedToStart);
  EXPECT_NE(result.error.find("/nonexistent/hakit/wd"), std::string::npos) << result.error;
}

TEST(scripts_RunProcess, StdinIsDevNull) {
  auto start = std::chrono::steady_clock::now();
  Captured captured;
  CommandResult result = RunProcess(Shell("cat; echo eof"), kBaseEnv, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(captured.out, (std::vector<std::string>{"eof"}));
  EXPECT_LT(MillisSince(start), 5000);
}

TEST(scripts_RunProcess, ChildGetsCleanSignalMaskAndDefaultDispositions) {
  // The daemon may block or ignore signals; its scripts must not inherit that.
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
  struct sigaction ignore = {};
  struct sigaction old_usr1 = {};
  struct sigaction old_pipe = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGUSR1, &ignore, &old_usr1);
  sigaction(SIGPIPE, &ignore, &old_pipe);

  // grep reads its own status, as our direct child: no shell in between,
  // whose own signal juggling around vfork could be observed instead.
  Command command;
  command.argv = {"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"};
  Captured captured;
  CommandResult result = RunProcess(command, kBaseEnv, captured.Sink());

  sigaction(SIGUSR1, &old_usr1, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

  ASSERT_TRUE(result.ok()) << result.error;
  ASSERT_EQ(captured.out.size(), 2u);
  EXPECT_EQ(captured.out[0], "SigBlk:\t0000000000000000");
  ASSERT_EQ(captured.out[1].rfind("SigIgn:\t", 0), 0u);
  unsigned long long ignored = std::stoull(captured.out[1].substr(8), nullptr, 16);
  // glibc's posix_spawn leaves its two internal signals (32 and 33, below
  // SIGRTMIN) ignored in the child on purpose; nothing else may be.
  ignored &= ~((1ULL << (32 - 1)) | (1ULL << (33 - 1)));
  EXPECT_EQ(ignored, 0u) << captured.out[1];
}

TEST(scripts_RunProcess, ChildLeadsItsOwnProcessGroup) {
  Captured captured;
  CommandResult result =
      RunProcess(Shell("echo $$; cut -d' ' -f5 /proc/$$/stat"), kBaseEnv, captured.Sink());
  ASSERT_TRUE(result.ok()) << result.error;
  ASSERT_EQ(captured.out.size(), 2u);
  EXPECT_EQ(captured.out[0], captured.out[1]);
  EXPECT_NE(captured.out[1], std::to_string(::getpgrp()));
}

TEST(scripts_RunProcess, TimeoutKillsTheWholeGroupPromptly) {
  TempDir dir;
  auto pid_file = dir.path() / "grandchild.pid";
  auto start = std::chrono::steady_clock::now();
  CommandResult result = RunProcess(
      Shell("sleep 1000 & echo $! > '" + pid_file.string() + "'; echo waiting; sleep 1000", 500ms),
      kBaseEnv, nullptr);
  long long elapsed = MillisSince(start);
  EXPECT_EQ(result.outcome, Outcome::kTimedOut);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.error.find("timed out after 500 ms"), std::string::npos) << result.error;
  EXPECT_GE(elapsed, 450);
  EXPECT_LT(elapsed, 2500) << "the call must return soon after the timeout";
  pid_t grandchild = ReadPid(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitGone(grandchild)) << "background grandchild " << grandchild << " survived";
}

TEST(scripts_RunProcess, TimeoutEscalatesToSigkill) {
  TempDir dir;
  auto pid_file = dir.path() / "grandchild.pid";
  // Everything ignores SIGTERM (the ignore is inherited across exec).
  auto start = std::chrono::steady_clock::now();
  CommandResult result = RunProcess(Shell("trap '' TERM; sleep 1000 & echo $! > '" +
                                              pid_file.string() + "'; while :; do sleep 0.05; done",
                                          300ms),
                                    kBaseEnv, nullptr);
  long long elapsed = MillisSince(start);
  EXPECT_EQ(result.outcome, Outcome::kTimedOut);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_GE(elapsed, 300 + 900) << "SIGKILL comes a second after SIGTERM";
  EXPECT_LT(elapsed, 300 + 3000);
  pid_t grandchild = ReadPid(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitGone(grandchild));
}

TEST(scripts_RunProcess, BackgroundDaemonSurvivesAndDoesNotBlock) {
  TempDir dir;
  auto pid_file = dir.path() / "leftover.pid";
  // The backgrounded sleep inherits stdout and stderr: it holds the pipes.
  auto start = std::chrono::steady_clock::now();
  Captured captured;
  CommandResult result =
      RunProcess(Shell("sleep 1000 & echo $! > '" + pid_file.string() + "'; echo done; exit 0"),
                 kBaseEnv, captured.Sink());
  EXPECT_LT(MillisSince(start), 2000);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(captured.out, (std::vector<std::string>{"done"}));
  pid_t leftover = ReadPid(pid_file);
  ASSERT_GT(leftover, 0);
  // What a start script launches is the application: it must keep running.
  EXPECT_TRUE(IsAlive(leftover)) << "the backgrounded process was killed";
  ::kill(leftover, SIGKILL);
  EXPECT_TRUE(WaitGone(leftover));
}

TEST(scripts_RunProcess, BackgroundDaemonKeepsWritingAfterTheCall) {
  TempDir dir;
  auto pid_file = dir.path() / "writer.pid";
  auto done_file = dir.path() / "writer.done";
  // The daemon writes to the inherited stdout long after the script ended:
  // it must neither die of SIGPIPE nor lose its lines.
  std::mutex mu;
  std::vector<std::string> lines;
  CommandResult result = RunProcess(
      Shell("(sleep 0.4; echo late; touch '" + done_file.string() + "'; exec sleep 1000) & echo $! > '" +
            pid_file.string() + "'; echo early"),
      kBaseEnv, [&](OutputStream, std::string_view l) {
        std::lock_guard lock(mu);
        lines.emplace_back(l);
      });
  ASSERT_TRUE(result.ok()) << result.error;
  pid_t daemon = ReadPid(pid_file);
  ASSERT_GT(daemon, 0);
  for (int i = 0; i < 100 && !std::filesystem::exists(done_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(std::filesystem::exists(done_file)) << "the daemon died writing its output";
  EXPECT_TRUE(IsAlive(daemon));
  ::kill(daemon, SIGKILL);
  EXPECT_TRUE(WaitGone(daemon));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard lock(mu);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "late"), lines.end());
}

TEST(scripts_RunProcess, ProcessThatLeftTheGroupDoesNotBlock) {
  TempDir dir;
  auto pid_file = dir.path() / "escaped.pid";
  auto start = std::chrono::steady_clock::now();
  Captured captured;
  // setsid puts the sleep in a session of its own, out of reach of the group
  // kill, still holding our stdout: the call must stop reading and return.
  CommandResult result =
      RunProcess(Shell("setsid sleep 1000 & echo $! > '" + pid_file.string() + "'; echo done"),
                 kBaseEnv, captured.Sink());
  long long elapsed = MillisSince(start);
  pid_t escaped = ReadPid(pid_file);
  if (escaped > 0) ::kill(escaped, SIGKILL);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(captured.out, (std::vector<std::string>{"done"}));
  EXPECT_LT(elapsed, 2000);
}

TEST(scripts_RunProcess, NoTimeoutMeansNoLimit) {
  CommandResult result = RunProcess(Shell("sleep 0.3; exit 5"), kBaseEnv, nullptr);
  EXPECT_EQ(result.outcome, Outcome::kExited);
  EXPECT_EQ(result.exit_code, 5);
  EXPECT_GE(result.duration.count(), 250);
}

TEST(scripts_RunProcess, ThrowingSinkDoesNotLeakTheChild) {
  TempDir dir;
  auto pid_file = dir.path() / "child.pid";
  CommandResult result =
      RunProcess(Shell("echo $$ > '" + pid_file.string() + "'; echo a; echo b; exit 2"), kBaseEnv,
                 [](OutputStream, std::string_view) { throw std::runtime_error("sink failed"); });
  EXPECT_EQ(result.outcome, Outcome::kExited);
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_FALSE(IsAlive(ReadPid(pid_file)));
}

TEST(scripts_RunProcess, ConcurrentRunsFromSeveralThreads) {
  constexpr int kThreads = 8;
  constexpr int kRunsPerThread = 10;
  std::atomic<int> failures{0};
  std::mutex mu;
  std::vector<std::string> problems;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &failures, &mu, &problems] {
      for (int r = 0; r < kRunsPerThread; ++r) {
        std::string id = std::to_string(t) + "-" + std::to_string(r);
        int code = (t + r) % 5;
        Command command = Shell("echo out-" + id + "; echo err-" + id + " >&2; sleep 0.0" +
                                std::to_string(r % 3) + "; exit " + std::to_string(code));
        command.extra_env = {{"RUN_ID", id}};
        Captured captured;
        CommandResult result = RunProcess(command, kBaseEnv, captured.Sink());
        bool good = result.outcome == Outcome::kExited && result.exit_code == code &&
                    captured.out == std::vector<std::string>{"out-" + id} &&
                    captured.err == std::vector<std::string>{"err-" + id};
        if (!good) {
          ++failures;
          std::lock_guard lock(mu);
          problems.push_back(id + ": " + DescribeResult(result));
        }
      }
    });
  }
  // Meanwhile, a long run on another thread with its own timeout.
  TempDir dir;
  auto pid_file = dir.path() / "long.pid";
  CommandResult long_run =
      RunProcess(Shell("sleep 1000 & echo $! > '" + pid_file.string() + "'; sleep 1000", 700ms),
                 kBaseEnv, nullptr);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0) << (problems.empty() ? "" : problems.front());
  EXPECT_EQ(long_run.outcome, Outcome::kTimedOut);
  EXPECT_TRUE(WaitGone(ReadPid(pid_file)));
}

std::size_t OpenDescriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

TEST(scripts_RunProcess, ChildInheritsNoDescriptorOfTheDaemon) {
  // A descriptor without O_CLOEXEC, as Boost.Asio opens its sockets.
  int leaky = ::dup(1);
  ASSERT_GE(leaky, 3);
  ::fcntl(leaky, F_SETFD, 0);
  Captured captured;
  CommandResult result =
      RunProcess(Shell("for f in /proc/$$/fd/*; do echo \"${f##*/}\"; done"), kBaseEnv,
                 captured.Sink());
  ::close(leaky);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(std::find(captured.out.begin(), captured.out.end(), std::to_string(leaky)),
            captured.out.end());
  EXPECT_NE(std::find(captured.out.begin(), captured.out.end(), "1"), captured.out.end());
}

TEST(scripts_RunProcess, LeaksNoDescriptors) {
  std::size_t before = OpenDescriptors();
  RunProcess(Shell("echo x; exit 1"), kBaseEnv, nullptr);
  RunProcess(Shell("sleep 1000", 100ms), kBaseEnv, nullptr);
  TempDir dir;
  auto pid_file = dir.path() / "bg.pid";
  RunProcess(Shell("sleep 1000 & echo $! > '" + pid_file.string() + "'; exit 0"), kBaseEnv,
             nullptr);
  Command missing;
  missing.argv = {"/nonexistent/hakit/prog"};
  RunProcess(missing, kBaseEnv, nullptr);
  // The pipes a left-running process holds are read until it closes them.
  pid_t bg = ReadPid(pid_file);
  ASSERT_GT(bg, 0);
  ::kill(bg, SIGKILL);
  ASSERT_TRUE(WaitGone(bg));
  for (int i = 0; i < 100 && OpenDescriptors() != before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(OpenDescriptors(), before);
}

TEST(scripts_RunProcess, DescribeResult) {
  CommandResult exited;
  exited.outcome = Outcome::kExited;
  exited.exit_code = 7;
  EXPECT_EQ(DescribeResult(exited), "exited with code 7");
  CommandResult signaled;
  signaled.outcome = Outcome::kSignaled;
  signaled.signal = SIGTERM;
  EXPECT_EQ(DescribeResult(signaled), "killed by signal 15 (SIGTERM)");
}

}  // namespace
}  // namespace hakit::scripts
