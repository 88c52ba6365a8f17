// Stand-alone driver for the fuzz targets when they are not built with
// libFuzzer (the default gcc build): runs every file named on the command
// line (or found in named directories), then a fixed number of seeded random
// inputs, so CI exercises each target on every run. The real fuzzing
// (`scripts/dev.sh fuzz`) links the same targets with -fsanitize=fuzzer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void RunFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                         bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        RunFile(e.path());
        ++files;
      }
    } else if (std::filesystem::exists(p)) {
      RunFile(p);
      ++files;
    }
  }
  const char* env = std::getenv("RK_FUZZ_RANDOM_INPUTS");
  const int random_inputs = env ? std::atoi(env) : 3000;
  std::mt19937_64 rng(1);
  std::vector<uint8_t> buf;
  for (int i = 0; i < random_inputs; ++i) {
    buf.resize(rng() % 600);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  std::printf("ran %zu corpus files and %d random inputs\n", files,
              random_inputs);
  return 0;
}
