// The parsed template: one node type for expressions and statements (a small tree owned by its parent).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/chat/value.h"

namespace moed::chat {

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    // Expressions.
    kLiteral,   // value
    kName,      // name
    kAttr,      // kids[0].name
    kItem,      // kids[0][kids[1]]
    kSlice,     // kids[0][kids[1]:kids[2]:kids[3]] (absent parts are nullptr)
    kCall,      // kids[0](kids[1..], kwargs)
    kFilter,    // kids[0] | name(kids[1..], kwargs)
    kTest,      // kids[0] is [not] name(kids[1..])
    kUnary,     // name ("-", "+", "not") kids[0]
    kBinary,    // kids[0] name kids[1] for + - * / // % ** ~ and or
    kCompare,   // kids[0] ops[0] kids[1] ops[1] kids[2] ...
    kCond,      // kids[1] if kids[0] else kids[2] (kids[2] may be nullptr)
    kList,      // [kids...]
    kTuple,     // (kids...)
    kDict,      // {kids[0]: kids[1], ...}
    // Statements.
    kText,      // value (a string)
    kOutput,    // {{ kids[0] }}
    kIf,        // if kids[i]: branches[i]; else: else_body
    kFor,       // for targets in kids[0] [if kids[1]]: body; else: else_body
    kSet,       // set targets = kids[0]; or set name.attr = kids[0]; or {% set targets[0] %}body{% endset %}
    kMacro,     // macro name(targets, defaults kids aligned to targets, nullptr when none): body
    kBreak,
    kContinue,
  };

  Kind kind;
  int line = 0, col = 0;  // where the node starts in the template
  std::string name;
  std::string attr;  // kSet on a namespace attribute
  Value value;
  std::vector<NodePtr> kids;
  std::vector<std::pair<std::string, NodePtr>> kwargs;
  std::vector<std::string> ops;
  std::vector<std::string> targets;
  std::vector<Body> branches;
  Body body, else_body;
  bool negated = false;  // kTest: `is not`
  bool block_set = false;
};

}  // namespace moed::chat
