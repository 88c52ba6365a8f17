#include "tools/rkctl/shell.h"

#include <editline/readline.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace rockeeper::rkctl {

namespace {

// libedit's completion callbacks are plain functions: they reach the shell's
// Cli through this pointer (set while RunShell runs).
Cli* g_cli = nullptr;
std::vector<std::string> g_matches;
size_t g_next_match = 0;
int g_word_index = 0;

char* NextMatch(const char* /*text*/, int state) {
  if (state == 0) g_next_match = 0;
  if (g_next_match >= g_matches.size()) return nullptr;
  return strdup(g_matches[g_next_match++].c_str());
}

char** CompleteLine(const char* text, int start, int /*end*/) {
  rl_attempted_completion_over = 1;  // never fall back to file names
  // The index of the word being completed: words before `start`.
  int index = 0;
  bool in_word = false;
  for (int i = 0; i < start && rl_line_buffer[i] != '\0'; ++i) {
    const bool space = rl_line_buffer[i] == ' ' || rl_line_buffer[i] == '\t';
    if (!space && !in_word) ++index;
    in_word = !space;
  }
  g_word_index = index;
  g_matches = g_cli->Complete(text, index);
  if (g_matches.empty()) return nullptr;
  return rl_completion_matches(text, NextMatch);
}

char g_word_breaks[] = " \t\n";

// Ctrl-C at the prompt must end readline() whenever it arrives. libedit's
// own signal handling only notices a signal that interrupts its read(2); one
// that lands while it is echoing is lost and leaves the tty in cooked mode.
// So the shell reads keys itself: poll on stdin and on a pipe that the
// SIGINT handler writes to (WakeShell), and report end of line input when
// interrupted. readline() then returns nullptr with Cli::Interrupted() set.
int g_wake_pipe[2] = {-1, -1};

void DrainWakePipe() {
  char buf[64];
  while (read(g_wake_pipe[0], buf, sizeof(buf)) > 0) {
  }
}

int ReadKey(FILE* /*in*/) {
  for (;;) {
    if (Cli::Interrupted()) return -1;
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {g_wake_pipe[0], POLLIN, 0}};
    const int rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (fds[1].revents != 0) DrainWakePipe();
    if (fds[0].revents == 0) continue;
    unsigned char c = 0;
    const ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n != 1) return -1;  // end of input
    if (c == 0x03) {        // ^C read as a key (the tty does not signal)
      Cli::Interrupt();
      return -1;
    }
    return c;
  }
}

bool OpenWakePipe() {
  if (g_wake_pipe[0] >= 0) return true;
  if (pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  return true;
}

}  // namespace

void WakeShell() {
  if (g_wake_pipe[1] < 0) return;
  const char byte = 1;
  const int saved_errno = errno;
  [[maybe_unused]] ssize_t n = write(g_wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

int RunShell(Cli& cli, const std::string& history_file) {
  if (!isatty(STDIN_FILENO)) {
    // A script on stdin: no prompt, no editing (as zkCli without JLine).
    std::string line;
    while (!cli.quit_requested() && std::getline(std::cin, line)) {
      cli.ExecuteLine(line);
    }
    return 0;
  }
  g_cli = &cli;
  if (OpenWakePipe()) {
    rl_catch_signals = 0;  // SIGINT stays ours; see ReadKey
    rl_getc_function = ReadKey;
  }
  rl_readline_name = "rkctl";
  rl_attempted_completion_function = CompleteLine;
  rl_completer_word_break_characters = g_word_breaks;
  using_history();
  stifle_history(1000);
  if (!history_file.empty()) read_history(history_file.c_str());
  while (!cli.quit_requested()) {
    Cli::ClearInterrupt();
    if (g_wake_pipe[0] >= 0) DrainWakePipe();
    const std::string prompt = cli.Prompt();
    char* raw = readline(prompt.c_str());
    if (raw == nullptr) {
      if (Cli::Interrupted()) {  // Ctrl-C at the prompt: a fresh line
        std::fputs("\n", stdout);
        continue;
      }
      std::fputs("\n", stdout);
      break;
    }
    std::string line(raw);
    std::free(raw);
    if (line.find_first_not_of(" \t") != std::string::npos) {
      add_history(line.c_str());
      if (!history_file.empty()) write_history(history_file.c_str());
    }
    cli.ExecuteLine(line);
  }
  g_cli = nullptr;
  return 0;
}

}  // namespace rockeeper::rkctl
