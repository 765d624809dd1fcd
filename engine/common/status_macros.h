// Early-return helpers for absl::Status / absl::StatusOr — the one macro family used across moed.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOED_STATUS_CONCAT_INNER_(a, b) a##b
#define MOED_STATUS_CONCAT_(a, b) MOED_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define MOED_RETURN_IF_ERROR(expr)                    \
  do {                                                \
    ::absl::Status moed_status_ = (expr);             \
    if (!moed_status_.ok()) return moed_status_;      \
  } while (0)

// `MOED_ASSIGN_OR_RETURN(auto x, F());` — binds the value of a StatusOr or returns its error.
#define MOED_ASSIGN_OR_RETURN(lhs, expr) \
  MOED_ASSIGN_OR_RETURN_IMPL_(MOED_STATUS_CONCAT_(moed_statusor_, __LINE__), lhs, expr)
#define MOED_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()
