/**
 * Only lib/kernel/ names the kernel's files: `/proc/...` and `/sys/...` may
 * not appear outside it, in strings, templates or comments. Everything above
 * the kernel layer asks a reader there, and takes the file names it reports
 * (for messages and evidence) from there too.
 */
const PATTERN = /\/(proc|sys)\//;

export default {
  meta: {
    type: 'problem',
    docs: { description: 'Only lib/kernel/ may name /proc/ and /sys/ files' },
    schema: [],
    messages: {
      path: 'Only lib/kernel/ names /proc/ and /sys/ files: ask a reader there ({{text}}).',
    },
  },
  create(context) {
    const report = (node, text) => context.report({ node, messageId: 'path', data: { text: text.trim().slice(0, 60) } });
    return {
      Literal(node) {
        if (typeof node.value === 'string' && PATTERN.test(node.value)) report(node, node.value);
      },
      TemplateElement(node) {
        if (PATTERN.test(node.value.raw)) report(node, node.value.raw);
      },
      Program() {
        for (const comment of context.sourceCode.getAllComments()) {
          if (PATTERN.test(comment.value)) report(comment, comment.value.match(/.{0,30}\/(proc|sys)\/.{0,20}/)?.[0] ?? '');
        }
      },
    };
  },
};
