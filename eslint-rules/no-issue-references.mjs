/**
 * Comments say why, in the code's own terms: a tracker's issue number means
 * nothing to a reader of the source and goes stale.
 */
const PATTERN = /\b(issue|bug|ticket)\s*#?\d+|(^|\s)#\d{1,5}\b/i;

export default {
  meta: {
    type: 'suggestion',
    docs: { description: 'No issue numbers in comments' },
    schema: [],
    messages: { issue: 'Say why in the comment itself, not which issue it came from.' },
  },
  create(context) {
    return {
      Program() {
        for (const comment of context.sourceCode.getAllComments()) {
          if (PATTERN.test(comment.value)) context.report({ loc: comment.loc, messageId: 'issue' });
        }
      },
    };
  },
};
