#include "diagnose.h"

#include "util.h"

char *diagnose_no_solution(struct solver *s, const struct solve_request *req)
{
	(void)s;
	(void)req;
	return xstrdup("Can't find all required versions.");
}
