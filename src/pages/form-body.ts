import type { RequestHandler } from 'express';
import { DomainError } from '../errors.ts';

// Failures the shared error handler already names (src/http/errors.ts).
const NAMED_ELSEWHERE = new Set([
  'entity.parse.failed',
  'entity.too.large',
  'encoding.unsupported',
  'charset.unsupported',
  'request.aborted',
]);

interface ParserFailure {
  type?: string;
  code?: string;
  status?: number;
}

/**
 * Runs a body parser (express.json, express.urlencoded, multer) so that whatever a browser or a
 * robot sends ends in a clear 4xx: broken compression, a cut multipart body, too many fields.
 */
export function readingBody(parser: RequestHandler): RequestHandler {
  return (req, res, next) => {
    parser(req, res, (error?: unknown) => {
      if (!error) {
        next();
        return;
      }
      const failure = error as ParserFailure;
      if (failure.type && NAMED_ELSEWHERE.has(failure.type)) {
        next(error);
      } else if (failure.code === 'LIMIT_UNEXPECTED_FILE' || failure.code === 'LIMIT_FILE_COUNT') {
        next(new DomainError('invalid', 'unexpected_file', 'this form takes no files'));
      } else if (failure.type === 'parameters.too.many' || failure.code?.startsWith('LIMIT_')) {
        next(
          new DomainError(
            'too_large',
            'too_many_fields',
            'the form has too many or too large fields',
          ),
        );
      } else {
        next(new DomainError('invalid', 'unreadable_body', 'the request body could not be read'));
      }
    });
  };
}
