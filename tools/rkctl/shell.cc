#include "tools/rkctl/shell.h"

#include <editline/readline.h>
#include <unistd.h>

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

}  // namespace

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
  rl_readline_name = "rkctl";
  rl_attempted_completion_function = CompleteLine;
  rl_completer_word_break_characters = g_word_breaks;
  using_history();
  stifle_history(1000);
  if (!history_file.empty()) read_history(history_file.c_str());
  while (!cli.quit_requested()) {
    Cli::ClearInterrupt();
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
