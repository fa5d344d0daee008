//! Which claims of the round may have room for a pod, looked up 64 claims at a time: placement
//! tries only those, rather than every claim for every pod (at 50,000 pods the round holds
//! 10,000 claims, nearly all full).

/// CPU and memory left, in millicores and bytes.
pub(super) type Room = [i64; 2];

#[derive(Default)]
pub(super) struct Rooms {
    /// Per claim: what its cheapest candidate has left, and the largest of each resource its
    /// candidates have left (what growing into a bigger type could give).
    cheapest: Vec<Room>,
    widest: Vec<Room>,
    /// Per block of 64 claims: the largest of each of the above.
    block_cheapest: Vec<Room>,
    block_widest: Vec<Room>,
}

const BLOCK: usize = 64;

fn fits(room: &Room, need: &Room) -> bool {
    room[0] >= need[0] && room[1] >= need[1]
}

/// The 64 bits of `bits` from bit `start` on (missing words read as clear).
fn window(bits: &[u64], start: usize) -> u64 {
    let (word, offset) = (start / 64, start % 64);
    let lo = bits.get(word).copied().unwrap_or(0) >> offset;
    let hi = if offset == 0 {
        0
    } else {
        bits.get(word + 1).copied().unwrap_or(0) << (64 - offset)
    };
    lo | hi
}

impl Rooms {
    /// Records claim `c`'s room (a new claim when `c` is the number of claims so far).
    pub(super) fn set(&mut self, c: usize, cheapest: Room, widest: Room) {
        if c == self.cheapest.len() {
            self.cheapest.push(cheapest);
            self.widest.push(widest);
        } else {
            self.cheapest[c] = cheapest;
            self.widest[c] = widest;
        }
        self.refresh(c / BLOCK);
    }

    /// Forgets the claims from `len` on.
    pub(super) fn truncate(&mut self, len: usize) {
        self.cheapest.truncate(len);
        self.widest.truncate(len);
        self.block_cheapest.truncate(len.div_ceil(BLOCK));
        self.block_widest.truncate(len.div_ceil(BLOCK));
        if !len.is_multiple_of(BLOCK) {
            self.refresh(len / BLOCK);
        }
    }

    fn refresh(&mut self, block: usize) {
        let range = block * BLOCK..((block + 1) * BLOCK).min(self.cheapest.len());
        let most = |rooms: &[Room]| {
            rooms
                .iter()
                .fold([i64::MIN, i64::MIN], |m, r| [m[0].max(r[0]), m[1].max(r[1])])
        };
        let (cheapest, widest) = (most(&self.cheapest[range.clone()]), most(&self.widest[range]));
        if block == self.block_cheapest.len() {
            self.block_cheapest.push(cheapest);
            self.block_widest.push(widest);
        } else {
            self.block_cheapest[block] = cheapest;
            self.block_widest[block] = widest;
        }
    }

    /// The first claim at or after `from` whose room (cheapest candidate's, or with `grow`
    /// the widest) takes `need` and whose host (`first` + claim) is clear in `skip`.
    pub(super) fn next(
        &self,
        from: usize,
        need: &Room,
        grow: bool,
        skip: &[u64],
        first: usize,
    ) -> Option<usize> {
        let (rooms, blocks) = if grow {
            (&self.widest, &self.block_widest)
        } else {
            (&self.cheapest, &self.block_cheapest)
        };
        let mut c = from;
        while c < rooms.len() {
            let block = c / BLOCK;
            let end = ((block + 1) * BLOCK).min(rooms.len());
            if fits(&blocks[block], need) {
                let start = block * BLOCK;
                let mut open = !window(skip, first + start);
                // Only claims from `c` to the end of the block.
                open &= u64::MAX << (c - start);
                if end - start < BLOCK {
                    open &= (1u64 << (end - start)) - 1;
                }
                while open != 0 {
                    let found = start + open.trailing_zeros() as usize;
                    if fits(&rooms[found], need) {
                        return Some(found);
                    }
                    open &= open - 1;
                }
            }
            c = end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_claims_with_room_past_full_blocks_and_skipped_hosts() {
        let mut rooms = Rooms::default();
        for c in 0..200 {
            rooms.set(c, [0, 0], [0, 0]);
        }
        rooms.set(150, [500, 1 << 20], [500, 1 << 20]);
        rooms.set(180, [2000, 1 << 30], [4000, 1 << 30]);
        let need = [400, 1 << 20];
        assert_eq!(rooms.next(0, &need, false, &[], 3), Some(150));
        assert_eq!(rooms.next(151, &need, false, &[], 3), Some(180));
        // Host 3 + 150 skipped.
        let mut skip = vec![0u64; 4];
        skip[153 / 64] |= 1 << (153 % 64);
        assert_eq!(rooms.next(0, &need, false, &skip, 3), Some(180));
        assert_eq!(rooms.next(0, &[3000, 0], false, &[], 0), None);
        assert_eq!(rooms.next(0, &[3000, 0], true, &[], 0), Some(180));
        // Every host but one marked, across words and at an offset not a multiple of 64.
        let mut all = vec![0u64; 8];
        for h in (0..400).filter(|h| *h != 3 + 180) {
            all[h / 64] |= 1 << (h % 64);
        }
        rooms.set(20, [4000, 1 << 30], [4000, 1 << 30]);
        assert_eq!(rooms.next(0, &need, false, &all, 3), Some(180));
        rooms.truncate(170);
        assert_eq!(rooms.next(151, &need, false, &[], 0), None);
    }
}
