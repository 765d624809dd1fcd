// Rendering of `moectl experts`: text heatmap and the HTML report.
#include "client/grpc/experts_report.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace moed::client {
namespace {

// Each expert's share of its layer's routed assignments (layer-major), 0 for a layer without any.
std::vector<double> Shares(const moed::v1::ExpertStats& st) {
  const int L = st.num_layers(), E = st.num_experts();
  std::vector<double> out(static_cast<size_t>(L) * E, 0.0);
  for (int l = 0; l < L && st.routed_tokens_size() == L * E; ++l) {
    int64_t sum = 0;
    for (int e = 0; e < E; ++e) sum += st.routed_tokens(l * E + e);
    for (int e = 0; e < E && sum > 0; ++e) out[l * E + e] = static_cast<double>(st.routed_tokens(l * E + e)) / sum;
  }
  return out;
}

// The class with the largest count, and its share of the expert's tokens.
std::pair<std::string, double> DominantClass(const moed::v1::ExpertTokens& x,
                                             const moed::v1::ExpertProfile& profile) {
  int best = -1;
  for (int c = 0; c < x.class_counts_size(); ++c) {
    if (best < 0 || x.class_counts(c) > x.class_counts(best)) best = c;
  }
  if (best < 0 || x.tokens() == 0 || best >= profile.token_classes_size()) return {"-", 0.0};
  return {profile.token_classes(best), static_cast<double>(x.class_counts(best)) / x.tokens()};
}

// A token's text made visible on one line: spaces as '·', newlines as '\n'.
std::string Visible(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == ' ') out += "\xC2\xB7";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out.empty() ? "\xE2\x88\x85" : out;  // ∅ for tokens with no text
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string TopTokens(const moed::v1::ExpertTokens& x, int top_n, bool html) {
  std::vector<std::string> parts;
  for (int i = 0; i < x.top_tokens_size() && i < top_n; ++i) {
    const moed::v1::TokenCount& t = x.top_tokens(i);
    const std::string text = Visible(t.text());
    parts.push_back(html ? absl::StrFormat("<code>%s</code>&nbsp;%d", HtmlEscape(text), t.count())
                         : absl::StrFormat("%s(%d)", text, t.count()));
  }
  return absl::StrJoin(parts, html ? " " : " ");
}

}  // namespace

std::string ExpertsText(const moed::v1::ExpertStats& st, const moed::v1::ExpertProfile& profile, int top_n) {
  static constexpr std::array<const char*, 5> kShades = {" ", "\xE2\x96\x91", "\xE2\x96\x92", "\xE2\x96\x93",
                                                         "\xE2\x96\x88"};  // ' ', ░, ▒, ▓, █
  const int L = st.num_layers(), E = st.num_experts();
  const std::vector<double> share = Shares(st);
  std::string out = absl::StrFormat(
      "expert load heatmap: each expert's share of its layer's assignments, shade by multiple of the mean 1/%d\n"
      "  ' ' < 0.5x  \xE2\x96\x91 < 1x  \xE2\x96\x92 < 1.5x  \xE2\x96\x93 < 3x  \xE2\x96\x88 >= 3x\n%6s |", E, "layer");
  for (int e = 0; e < E; ++e) absl::StrAppendFormat(&out, "%4d", e);
  out += " |  max/mean\n";
  for (int l = 0; l < L; ++l) {
    absl::StrAppendFormat(&out, "%6d |", l);
    double max = 0;
    for (int e = 0; e < E; ++e) {
      const double ratio = share[l * E + e] * E;  // load / mean
      max = std::max(max, ratio);
      const int shade = ratio <= 0 ? 0 : ratio < 0.5 ? 0 : ratio < 1 ? 1 : ratio < 1.5 ? 2 : ratio < 3 ? 3 : 4;
      absl::StrAppend(&out, " ", kShades[shade], kShades[shade], kShades[shade]);
    }
    absl::StrAppendFormat(&out, " | %8.2f\n", max);
  }
  absl::StrAppendFormat(&out, "\ntop tokens per expert (%d tokens profiled: prompt and generated; count "
                        "is an upper bound, class = most frequent token class)\n", profile.tokens_profiled());
  for (const moed::v1::ExpertTokens& x : profile.experts()) {
    const auto [cls, cls_share] = DominantClass(x, profile);
    absl::StrAppendFormat(&out, "L%d E%-3d %7d tok  %-12s %3.0f%%  %s\n", x.layer(), x.expert(), x.tokens(), cls,
                          100 * cls_share, TopTokens(x, top_n, false));
  }
  return out;
}

std::string ExpertsHtml(const moed::v1::ExpertStats& st, const moed::v1::ExpertProfile& profile, int top_n) {
  const int L = st.num_layers(), E = st.num_experts();
  const std::vector<double> share = Shares(st);
  std::string h = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>moed expert report</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;font-size:13px}
td.l{text-align:left}
code{background:#f3f3f3;padding:0 3px}
.heat td{width:34px;height:24px}
</style></head><body>
<h1>moed expert report</h1>
)";
  absl::StrAppendFormat(&h, "<p>%d layers &times; %d experts, top-%d, %d engine steps; %d tokens profiled.</p>\n", L, E,
                        st.top_k(), st.steps(), profile.tokens_profiled());

  // Heatmap: colour by load / layer mean (white = 0, orange = 1, dark red = 3 and more).
  h += "<h2>Load heatmap</h2>\n<p>Cell: share of the layer's router assignments; colour: load over the layer mean "
       "(darker = hotter, dark red &ge; 3&times;).</p>\n<table class=\"heat\" id=\"heatmap\"><tr><th>layer</th>";
  for (int e = 0; e < E; ++e) absl::StrAppendFormat(&h, "<th>E%d</th>", e);
  h += "</tr>\n";
  for (int l = 0; l < L; ++l) {
    absl::StrAppendFormat(&h, "<tr><th>%d</th>", l);
    for (int e = 0; e < E; ++e) {
      const double ratio = share[l * E + e] * E;
      const double t = std::min(1.0, ratio / 3.0);
      const int g = static_cast<int>(255 * (1 - t)), b = static_cast<int>(235 * (1 - t) * (1 - t));
      absl::StrAppendFormat(&h, "<td style=\"background:rgb(255,%d,%d);color:%s\" title=\"%.2fx mean\">%.1f%%</td>", g,
                            b, t > 0.6 ? "#fff" : "#000", ratio, 100 * share[l * E + e]);
    }
    h += "</tr>\n";
  }
  h += "</table>\n";

  // Balance table from GetExpertStats.
  h += "<h2>Balance</h2>\n<table id=\"balance\"><tr><th>layer</th><th>window</th><th>Gini</th><th>entropy</th>"
       "<th>max/mean</th><th>CV</th><th>assignments</th></tr>\n";
  for (const moed::v1::LayerBalance& b : st.balance()) {
    absl::StrAppendFormat(&h, "<tr><td>%d</td><td class=\"l\">%s</td><td>%.4f</td><td>%.4f</td><td>%.3f</td>"
                          "<td>%.4f</td><td>%d</td></tr>\n", b.layer(), b.window(), b.gini(), b.entropy(),
                          b.max_over_mean(), b.cv(), b.assignments());
  }
  h += "</table>\n";

  // Specialization table.
  h += "<h2>Specialization</h2>\n<p>Top tokens each expert receives (computed prompt and generated tokens; counts are upper "
       "bounds from a 32-counter SpaceSaving sketch) and its token classes.</p>\n"
       "<table id=\"specialization\"><tr><th>layer</th><th>expert</th><th>tokens</th><th>main class</th>"
       "<th>classes</th><th class=\"l\">top tokens</th></tr>\n";
  for (const moed::v1::ExpertTokens& x : profile.experts()) {
    const auto [cls, cls_share] = DominantClass(x, profile);
    std::vector<std::string> classes;
    for (int c = 0; c < x.class_counts_size() && c < profile.token_classes_size(); ++c) {
      if (x.class_counts(c) > 0) classes.push_back(absl::StrCat(profile.token_classes(c), " ", x.class_counts(c)));
    }
    absl::StrAppendFormat(&h, "<tr class=\"expert\"><td>%d</td><td>%d</td><td>%d</td><td class=\"l\">%s %.0f%%</td>"
                          "<td class=\"l\">%s</td><td class=\"l\">%s</td></tr>\n", x.layer(), x.expert(), x.tokens(),
                          cls, 100 * cls_share, HtmlEscape(absl::StrJoin(classes, ", ")), TopTokens(x, top_n, true));
  }
  h += "</table>\n";

  // Balance over time: max/mean of the 1000-step window per layer, one polyline each.
  h += "<h2>Balance over time</h2>\n";
  const auto& hist = profile.balance_history();
  if (hist.empty()) {
    h += "<p id=\"no-history\">No balance points yet (one every 50 engine steps).</p>\n";
  } else {
    constexpr double kW = 720, kH = 240, kPad = 30;
    double ymax = 1.0;
    for (const auto& p : hist) for (double v : p.max_over_mean()) ymax = std::max(ymax, v);
    const double x0 = static_cast<double>(hist[0].step()), x1 = static_cast<double>(hist[hist.size() - 1].step());
    auto X = [&](double s) { return kPad + (x1 > x0 ? (s - x0) / (x1 - x0) : 0.5) * (kW - 2 * kPad); };
    auto Y = [&](double v) { return kH - kPad - v / ymax * (kH - 2 * kPad); };
    absl::StrAppendFormat(&h, "<p>Busiest expert over the layer mean (last 1000 steps), steps %d to %d; "
                          "y from 0 to %.2f.</p>\n<svg id=\"balance-over-time\" xmlns=\"http://www.w3.org/2000/svg\" "
                          "width=\"%.0f\" height=\"%.0f\"><rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
                          hist[0].step(), hist[hist.size() - 1].step(), ymax, kW, kH);
    static constexpr std::array<const char*, 6> kColours = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
                                                            "#8c564b"};
    for (int l = 0; l < L; ++l) {
      std::vector<std::string> pts;
      for (const auto& p : hist) {
        if (l < p.max_over_mean_size()) pts.push_back(absl::StrFormat("%.1f,%.1f", X(p.step()), Y(p.max_over_mean(l))));
      }
      absl::StrAppendFormat(&h, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"><title>layer %d"
                            "</title></polyline>\n", kColours[l % kColours.size()], absl::StrJoin(pts, " "), l);
    }
    absl::StrAppendFormat(&h, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
                          "stroke-dasharray=\"4\"/></svg>\n", kPad, kW - kPad, Y(std::min(3.0, ymax)),
                          Y(std::min(3.0, ymax)));
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace moed::client
