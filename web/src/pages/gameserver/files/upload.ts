// An upload with progress: `PUT …/files?path=F` with the File as the body, by XMLHttpRequest
// (fetch has no upload progress). Errors become ApiError with the API's Status.

import { ApiError, currentSession, type Status } from '../../../api/client';

export function uploadWithProgress(
  url: string,
  body: Blob,
  onProgress: (loaded: number, total: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  return currentSession().then(
    (s) =>
      new Promise<void>((resolve, reject) => {
        const x = new XMLHttpRequest();
        x.open('PUT', url);
        if (s) x.setRequestHeader('Authorization', `Bearer ${s.accessToken}`);
        x.setRequestHeader('Content-Type', 'application/octet-stream');
        x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : body.size);
        x.onload = () => {
          if (x.status >= 200 && x.status < 300) return resolve();
          let status: Status;
          try {
            status = JSON.parse(x.responseText) as Status;
          } catch {
            status = { message: x.responseText || `HTTP ${x.status}` };
          }
          reject(new ApiError(x.status, status));
        };
        x.onerror = () => reject(new Error('the upload failed (network error)'));
        x.onabort = () => reject(new Error('upload cancelled'));
        signal?.addEventListener('abort', () => x.abort());
        x.send(body);
      }),
  );
}
