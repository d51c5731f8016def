/* Explanations of why a solve has no solution, in the shape opam-0install prints them. */
#ifndef OBAKE_DIAGNOSE_H
#define OBAKE_DIAGNOSE_H

#include "solver.h"

/* Return a newly allocated explanation of why REQ has no solution in S's universe. */
char *diagnose_no_solution(struct solver *s, const struct solve_request *req);

#endif
