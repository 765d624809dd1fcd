// `moectl experts`: the layer × expert load heatmap and each expert's top tokens, in the terminal or as a
// self-contained HTML page (heatmap, specialization table, balance over time).
#pragma once

#include <string>

#include "moed/v1/moed.pb.h"

namespace moed::client {

// Terminal report: a shaded heatmap of each expert's share of its layer's assignments, the balance table, and
// the top `top_n` tokens of every expert with its dominant token class.
std::string ExpertsText(const moed::v1::ExpertStats& stats, const moed::v1::ExpertProfile& profile, int top_n);

// One HTML document with inline CSS and SVG only (no scripts, no external resources).
std::string ExpertsHtml(const moed::v1::ExpertStats& stats, const moed::v1::ExpertProfile& profile, int top_n);

}  // namespace moed::client
