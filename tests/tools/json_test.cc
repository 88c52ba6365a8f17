// The JSON parser and writer rkutl's dump format relies on.
#include "tools/rkutl/json.h"

#include "gtest/gtest.h"

namespace rockeeper::rkutl {
namespace {

TEST(JsonTest, ParsesValues) {
  auto j = ParseJson(
      R"({"a": [1, -2, 3.5e2, true, false, null], "b": "x\u00e9\ud83d\ude00\n",
          "big": 9223372036854775807})");
  ASSERT_TRUE(j.ok()) << j.status();
  const Json* a = j->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items.size(), 6u);
  EXPECT_EQ(a->items[1].AsInt(), -2);
  EXPECT_FALSE(a->items[2].AsInt().has_value());
  EXPECT_TRUE(a->items[3].boolean);
  EXPECT_EQ(a->items[5].type, Json::Type::kNull);
  EXPECT_EQ(j->Find("b")->text, "x\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(j->Find("big")->AsInt(), INT64_MAX);
}

TEST(JsonTest, RejectsMalformedInputWithPosition) {
  for (const char* bad : {"{", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "01",
                          "\"a\nb\"", "[1] x", "\"\xff\"", "{\"a\":tru}"}) {
    auto j = ParseJson(bad);
    EXPECT_FALSE(j.ok()) << bad;
    if (!j.ok()) {
      EXPECT_NE(j.status().message().find("line 1"), std::string::npos);
    }
  }
  auto j = ParseJson("{\n\"a\": [1,\n  2,,3]}");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("line 3, column 5"), std::string::npos)
      << j.status();
}

TEST(JsonTest, StringsRoundTrip) {
  const std::string s = std::string("q\"b\\s/\x01\x7f\t\n", 10) +
                        "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80";
  ASSERT_TRUE(IsValidUtf8(s));
  auto j = ParseJson(JsonString(s));
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->text, s);
}

TEST(JsonTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x9c"));          // truncated
  EXPECT_FALSE(IsValidUtf8(std::string("\x00\xff", 2)));
}

}  // namespace
}  // namespace rockeeper::rkutl
