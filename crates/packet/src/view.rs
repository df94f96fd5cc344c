//! Shared boilerplate of the smoltcp-style views: `new_unchecked`, `new_checked`,
//! `into_inner`, `as_bytes`.

macro_rules! view {
    ($(#[$m:meta])* $name:ident, $layer:expr, $min:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Minimum header length this view reads.
            pub const MIN_LEN: usize = $min;

            /// Wraps `buffer` without any check; accessors may panic on a short buffer.
            pub fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps `buffer` after checking that every accessor stays in bounds.
            pub fn new_checked(buffer: T) -> $crate::Result<Self> {
                let v = Self { buffer };
                v.check_len()?;
                Ok(v)
            }

            /// Gives the buffer back.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole underlying buffer.
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }

            #[inline]
            fn b(&self) -> &[u8] {
                self.buffer.as_ref()
            }

            #[allow(dead_code)]
            #[inline]
            fn min_check(&self) -> $crate::Result<()> {
                $crate::error::need(self.b(), $min, $layer)
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            #[allow(dead_code)]
            #[inline]
            fn bm(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
        }
    };
}

pub(crate) use view;
